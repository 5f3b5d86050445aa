"""What an OpenAI-compatible endpoint is and can do, asked before a teacher uses it: reachable, authorised,
serving the model (`probe_endpoint`, before a run starts anything), and whether it chats, holds replies to a JSON
schema and takes vLLM's guided choice (`endpoint_capabilities`: one tiny request each). Its replies are read as
data too (openai_replies.py): a status 200 whose body is not the reply asked for does not count as a yes."""
from __future__ import annotations

import ipaddress
import logging
import os
from urllib.parse import urlsplit

import httpx

from pgkd.basics.errors import InputError
from pgkd.basics.redact import redact
from pgkd.teacher.backends.base import Capabilities, looks_instruct
from pgkd.teacher.backends.openai_replies import BadReply, ChatReply, ModelList, TextReply, read_reply

PROBE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}

log = logging.getLogger(__name__)


def key_may_travel(base_url: str, allow_insecure: bool = False) -> bool:
    """An API key goes only over https, or to this machine (loopback), unless the user allowed plain http."""
    parts = urlsplit(base_url)
    return parts.scheme == "https" or allow_insecure or is_loopback(parts.hostname or "")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def auth_headers(api_key_env: str | None, base_url: str, allow_insecure: bool = False) -> dict[str, str]:
    """The Bearer header, or none: without a key, or where the key would cross a network in clear (the settings
    refuse that at load; this is the last guard, for an environment that differs in an actor)."""
    key = os.environ.get(api_key_env) if api_key_env else None
    if key and not key_may_travel(base_url, allow_insecure):
        log.warning("not sending the API key in $%s in clear to %s (use https, or teacher.allow_insecure)",
                    api_key_env, redact(base_url))
        return {}
    return {"Authorization": f"Bearer {key}"} if key else {}


def with_schema(body: dict, schema: dict) -> dict:
    """The OpenAI way to hold a reply to a JSON schema; vLLM takes it on /completions as well as on chat."""
    return body | {"response_format": {"type": "json_schema",
                                       "json_schema": {"name": "reply", "schema": schema, "strict": True}},
                   "stop": []}


def endpoint_capabilities(client: httpx.Client, model: str) -> Capabilities:
    """One tiny request per feature: a chat turn, a reply held to a JSON schema, vLLM's guided choice.
    A refusal (any non-200, or a 200 that is not a reply) turns the feature off with the endpoint's reason in
    `notes`."""
    notes = []

    def accepts(path: str, body: dict, feature: str) -> bool:
        try:
            response = client.post(path, json={"model": model, "max_tokens": 4, "temperature": 0.0} | body)
        except httpx.RequestError as exc:  # transport errors, and a body that cannot be decoded
            notes.append(f"{feature}: no answer ({type(exc).__name__})")
            return False
        if response.status_code != 200:
            notes.append(f"no {feature} (HTTP {response.status_code} from {path}: {response.text[:160]})")
            return False
        try:
            read_reply(ChatReply if path == "/chat/completions" else TextReply, response.content)
        except BadReply as exc:  # a gateway's page with status 200 is no sign the feature works
            notes.append(f"no {feature} (HTTP 200 from {path} with a bad reply: {exc})")
            return False
        return True

    hello = {"messages": [{"role": "user", "content": "Reply with OK."}]}
    chat = accepts("/chat/completions", hello, "chat")
    completions = accepts("/completions", {"prompt": "OK"}, "text completions")
    path, base = ("/chat/completions", hello) if chat else ("/completions", {"prompt": "OK"})
    schema = (chat or completions) and accepts(path, with_schema(base, PROBE_SCHEMA), "JSON-schema replies")
    choice = chat and accepts(path, base | {"structured_outputs": {"choice": ["yes", "no"]}}, "guided choice")
    # An instruct model by its name, or an endpoint that only chats (most hosted APIs), is spoken to in chat.
    return Capabilities(chat=chat, json_schema=schema, chat_default=chat and (looks_instruct(model) or not completions),
                        guided_choice=choice, notes=notes)


def probe_endpoint(base_url: str, model: str, api_key_env: str | None, timeout_s: float,
                   allow_insecure: bool = False) -> Capabilities:
    """Ask the endpoint for its models (or, where it has no model list, for one token), once, within timeout_s,
    then what it can do. Unreachable, unauthorised, or not serving the model: an InputError with the URL,
    credentials hidden."""
    headers = auth_headers(api_key_env, base_url, allow_insecure)
    with httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s) as client:
        check_serves(client, base_url, model, api_key_env, timeout_s)
        return endpoint_capabilities(client, model)


def check_serves(client: httpx.Client, base_url: str, model: str, api_key_env: str | None, timeout_s: float) -> None:
    """Reachable, authorised and serving the model, or an InputError naming the URL (credentials hidden)."""
    where, field = redact(base_url), "teacher.base_url"
    try:
        response = client.get("/models")
        if response.status_code in (404, 405):  # no model list here: one tiny completion instead
            response = client.post("/completions", json={"model": model, "prompt": "ping", "max_tokens": 1})
    except httpx.RequestError as exc:
        raise InputError(f"teacher endpoint {where} is unreachable within {timeout_s:g}s "
                         f"(teacher.timeout_s): {type(exc).__name__}: {exc}", field=field) from None
    if response.status_code in (401, 403):
        how = (f"${api_key_env} is set but was refused" if client.headers.get("Authorization")
               else f"no key was sent (${api_key_env} is unset)")
        raise InputError(f"teacher endpoint {where} refused access (HTTP {response.status_code}): {how}",
                         field="teacher.api_key_env")
    if response.status_code != 200:
        raise InputError(f"teacher endpoint {where} answered HTTP {response.status_code}: {response.text[:200]}",
                         field=field)
    served = served_models(response)
    if served is not None and model not in served:
        raise InputError(f"teacher endpoint {where} does not serve '{model}' (it serves {served[:10]})",
                         field="teacher.served_model")


def served_models(response: httpx.Response) -> list[str] | None:
    """The model ids of a /models answer; None when the answer is not such a list (some servers answer with one
    model object, or answered a one-token completion instead): then there is no list to check the model against."""
    try:
        return [card.id for card in read_reply(ModelList, response.content).data]
    except BadReply:
        return None
