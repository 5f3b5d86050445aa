"""Any OpenAI-compatible endpoint over HTTP (`vllm serve`, a hosted API): text prompts go to /completions,
chat prompts to /chat/completions.

At start the backend asks the endpoint once what it can do (`endpoint_capabilities`): chat, replies held to a
JSON schema (`response_format`), and vLLM's guided choice. Where it cannot, the teacher uses the completion
format or plain parsing instead, and the run's log and report say why. A request rejected for its schema later
(HTTP 400) is sent again without it, once, and the backend stops asking for schemas.

Each prompt is one request, at most `concurrency` in flight. Every reply is read as data
(openai_replies.py); a body that is not the reply asked for (an HTML page with status 200, cut-off or NaN-bearing
JSON, another shape) is a failed attempt like a 5xx. A request that fails with a retryable error (connection,
timeout, 408/409/429/5xx, a bad reply) is retried with exponential backoff; any other error, or running out of
retries, loses that request only: an empty Completion marked failed (or None when scoring), logged and counted
by the caller. `max_consecutive_failures` lost requests in a row (no success between) mean the endpoint is gone:
TeacherUnavailable, which stops the replica. `OpenAIHTTPBackend.probe` tries the endpoint once before a run starts.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator, model_validator

from pgkd.basics.settings import check_url
from pgkd.basics.redact import redact
from pgkd.teacher.backends.base import (
    TEACHER_BACKENDS,
    Capabilities,
    Completion,
    Prompt,
    SamplingSpec,
    TeacherBackend,
    TeacherUnavailable,
    scored_by_continuation,
)
from pgkd.teacher.backends.openai_probe import (auth_headers, endpoint_capabilities, key_may_travel, probe_endpoint,
                                               with_schema)
from pgkd.teacher.backends.openai_replies import (
    BadReply,
    ChatReply,
    EchoLogprobs,
    EchoReply,
    Reply,
    ScoredChatReply,
    TextReply,
    read_reply,
)
from pgkd.teacher.formats import resolve_format
from pgkd.teacher.settings import LLMTeacherSettings

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 8.0
TOP_LOGPROBS = 20  # the most OpenAI's chat API returns per token


class RequestFailed(Exception):
    """One request gave up: a non-retryable error, or retries ran out."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class OpenAISettings(LLMTeacherSettings):
    """Any OpenAI-compatible endpoint (`vllm serve`, a hosted API)."""

    backend: Literal["openai"] = "openai"
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible API root, e.g. `vllm serve`")
    served_model: str | None = Field(None, description="model name at the endpoint; null: teacher.model")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the key (never "
                                    "put the key itself in a config)")
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(4, ge=0, description="retries of one request, on retryable errors only")
    concurrency: int = Field(8, ge=1, description="requests in flight at once per replica")
    max_consecutive_failures: int = Field(16, ge=1, description="lost requests in a row (each after its retries) "
                                          "before the replica gives up and says the endpoint is gone")
    allow_insecure: bool = Field(False, description="send the API key over plain http to a host other than this "
                                 "machine (anyone on the way can read it); off: https or loopback only")

    @field_validator("base_url")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        return check_url(value, ("http", "https"), "http(s)://host:port/v1")

    @model_validator(mode="after")
    def _key_only_over_https(self) -> "OpenAISettings":
        if self.api_key_env and os.environ.get(self.api_key_env) and not key_may_travel(self.base_url,
                                                                                        self.allow_insecure):
            raise ValueError(f"base_url: the API key in ${self.api_key_env} would cross the network in clear to "
                             f"{urlsplit(self.base_url).hostname}; use https, or set teacher.allow_insecure: true")
        return self


@TEACHER_BACKENDS.register("openai", OpenAISettings)
class OpenAIHTTPBackend(TeacherBackend):
    @classmethod
    def from_settings(cls, settings: OpenAISettings, replica: int,
                      kv_block_size: int | None = None) -> "OpenAIHTTPBackend":
        return cls(settings.model, settings.base_url, settings.served_model, settings.api_key_env,
                   settings.timeout_s, settings.max_retries, settings.concurrency, settings.max_consecutive_failures,
                   allow_insecure=settings.allow_insecure)

    @classmethod
    def probe(cls, settings: OpenAISettings, progress: Callable[[str], None] = print) -> Capabilities:
        """Reachable, authorised and serving the model, or an InputError before anything starts; then what it can
        do, and how the teacher will speak to it."""
        where = redact(settings.base_url)
        progress(f"teacher endpoint {where}: checking")
        capabilities = probe_endpoint(settings.base_url, settings.served_model or settings.model,
                                      settings.api_key_env, settings.timeout_s, settings.allow_insecure)
        for note in capabilities.notes:
            progress(f"teacher endpoint {where}: {note}")
        chosen = resolve_format(settings, capabilities)
        progress(f"teacher endpoint {where}: {chosen.prompt_format} prompts, "
                 f"{'structured (JSON schema)' if chosen.structured else 'plain'} generation replies")
        for note in chosen.notes:
            progress(f"teacher: {note}")
        return capabilities

    def __init__(self, model: str, base_url: str, served_model: str | None = None, api_key_env: str | None = None,
                 timeout_s: float = 120, max_retries: int = 4, concurrency: int = 8, max_consecutive_failures: int = 16,
                 capabilities: Capabilities | None = None, allow_insecure: bool = False):
        self.model_name = served_model or model
        self.max_retries, self.max_consecutive_failures = max_retries, max_consecutive_failures
        self.where = redact(base_url)
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=auth_headers(api_key_env, base_url, allow_insecure),
                                   timeout=timeout_s, limits=httpx.Limits(max_connections=concurrency))
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="teacher-http")
        self.failures = 0  # failed attempts, retries included
        self.lost_in_a_row, self.last_error = 0, ""
        self.lock = threading.Lock()
        self.capabilities = capabilities or endpoint_capabilities(self.client, self.model_name)  # None: ask it
        for note in self.capabilities.notes:
            log.warning("teacher endpoint %s: %s", self.where, note)

    def generate(self, prompts: list[Prompt], spec: SamplingSpec) -> list[Completion]:
        body = {"model": self.model_name, "n": spec.n, "temperature": spec.temperature, "top_p": spec.top_p,
                "max_tokens": spec.max_tokens, "stop": list(spec.stop)}
        if spec.seed is not None:
            body["seed"] = spec.seed
        schema = spec.json_schema if self.capabilities.json_schema else None
        completions = list(self.pool.map(lambda p: self._complete(p, body, schema), prompts))
        self._give_up_if_gone()
        return completions

    def _complete(self, prompt: Prompt, body: dict, schema: dict | None) -> Completion:
        chat = not isinstance(prompt, str)
        path, body = ("/chat/completions", body | {"messages": prompt}) if chat else ("/completions",
                                                                                     body | {"prompt": prompt})
        try:
            reply = self._post(path, with_schema(body, schema) if schema else body, ChatReply if chat else TextReply)
        except RequestFailed as exc:
            if schema and exc.status == 400:  # the schema, not the prompt, may be what it refused
                self._no_more_schemas(exc)
                return self._complete(prompt, body, None)
            log.warning("completion request lost: %s", exc)
            self._lost(exc)
            return Completion(texts=[], prompt_tokens=0, completion_tokens=0, failed=True)
        self._answered()
        texts = [c.message.content or "" if chat else c.text for c in reply.choices]
        usage = reply.usage
        return Completion(texts=texts, prompt_tokens=usage.prompt_tokens if usage else 0,
                          completion_tokens=usage.completion_tokens if usage else 0, structured=schema is not None)

    def _no_more_schemas(self, exc: RequestFailed) -> None:
        with self.lock:
            if self.capabilities.json_schema:
                self.capabilities.json_schema = False
                note = f"a request with a JSON schema was refused ({exc}); replies are parsed as plain text from now on"
                self.capabilities.notes.append(note)
                log.warning("teacher endpoint %s: %s", self.where, note)

    def choice_logprobs(self, prompts: list[Prompt], choices: list[list[str]]) -> list[dict[str, float] | None]:
        """Text prompts: every choice scored exactly as an echoed continuation. Chat prompts (no echo there):
        one guided-choice request each, its soft label read from the top log-probabilities of the reply's first
        token (`chat_choice_scores`)."""
        if all(isinstance(p, str) for p in prompts):
            return scored_by_continuation(self, prompts, choices)
        scores = list(self.pool.map(self._chat_choice, prompts, choices))
        self._give_up_if_gone()
        return scores

    def _chat_choice(self, messages: list[dict], options: list[str]) -> dict[str, float] | None:
        body = {"model": self.model_name, "messages": messages, "temperature": 0.0, "logprobs": True,
                "top_logprobs": TOP_LOGPROBS, "max_tokens": 16}
        if self.capabilities.guided_choice:
            body["structured_outputs"] = {"choice": options}
        try:
            choice = self._post("/chat/completions", body, ScoredChatReply).choices[0]
        except RequestFailed as exc:
            self._scoring_lost("chat labelling", exc)
            return None
        self._answered()
        first = choice.logprobs.content[0]  # the reply's validation asks for one at least, every value finite
        top = {entry.token: entry.logprob for entry in first.top_logprobs}
        top.setdefault(first.token, first.logprob)
        return chat_choice_scores(top, options, choice.message.content or "")

    def continuation_logprobs(self, prefixes: list[str], continuations: list[str]) -> list[float | None]:
        """Prompt-token scoring: the endpoint echoes prefix + continuation with each token's log-probability;
        the continuation's tokens are those starting at or after the prefix's end (`text_offset`)."""
        scores = list(self.pool.map(self._score, prefixes, continuations))
        self._give_up_if_gone()
        return scores

    def _score(self, prefix: str, continuation: str) -> float | None:
        body = {"model": self.model_name, "prompt": prefix + continuation, "echo": True, "logprobs": 1,
                "max_tokens": 1, "temperature": 0.0}
        try:
            reply = self._post("/completions", body, EchoReply)
        except RequestFailed as exc:
            self._scoring_lost("scoring", exc)
            return None
        self._answered()  # it answered; a reply whose offsets do not line up is unscored, not lost
        return continuation_sum(reply.choices[0].logprobs, reply.usage.completion_tokens, len(prefix),
                                len(prefix + continuation))

    def _scoring_lost(self, what: str, exc: RequestFailed) -> None:
        log.warning("%s request lost: %s", what, exc)
        self._lost(exc)

    def _post(self, path: str, body: dict, shape: type[Reply]) -> Reply:
        """The reply as `shape`, after retries where needed; RequestFailed when it gave up."""
        delay = BACKOFF_START_S
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.post(path, json=body)
            except httpx.RequestError as exc:  # refused, reset, timed out, a body cut off: the server may come back
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    try:
                        return read_reply(shape, response.content)
                    except BadReply as exc:  # a gateway's error page, a torn body: the next try may be whole
                        error = f"HTTP 200 with a bad reply: {exc}"
                else:
                    error = f"HTTP {response.status_code}: {response.text[:200]}"
                    if response.status_code not in RETRYABLE_STATUS:
                        raise RequestFailed(error, response.status_code)
            with self.lock:
                self.failures += 1
            if attempt < self.max_retries:
                time.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        raise RequestFailed(f"{error} (after {self.max_retries} retries)")

    def _lost(self, exc: Exception) -> None:
        with self.lock:
            self.lost_in_a_row += 1
            self.last_error = str(exc)[:300]

    def _answered(self) -> None:
        with self.lock:
            self.lost_in_a_row = 0

    def _give_up_if_gone(self) -> None:
        if self.lost_in_a_row >= self.max_consecutive_failures:
            raise TeacherUnavailable(f"teacher endpoint {self.where}: {self.lost_in_a_row} requests in a row failed "
                                     f"(teacher.max_consecutive_failures); last: {self.last_error}")

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.client.close()


def chat_choice_scores(top: dict[str, float], options: list[str], answer: str) -> dict[str, float]:
    """Log-probabilities of the options from the first reply token's top alternatives: a token is mass for the
    options whose text starts with it, shared evenly where several do. An option no listed token starts gets at
    most what the least likely listed token has (the mass it could have had unseen); the answered option at
    least its own token's."""
    mass: dict[str, float] = {option: 0.0 for option in options}
    for token, logprob in top.items():
        piece = token.lstrip()
        owners = [option for option in options if piece and option.lstrip().startswith(piece)]
        for option in owners:
            mass[option] += math.exp(min(logprob, 0.0)) / len(owners)  # a rounding-positive value is p=1, no overflow
    floor = min(top.values(), default=-30.0) - math.log(max(1, len(options)))
    scores = {option: math.log(m) if m > 0 else floor for option, m in mass.items()}
    answer = answer.strip()
    if answer in scores and not mass[answer]:
        scores[answer] = max(scores.values())
    return scores


def continuation_sum(logprobs: EchoLogprobs, generated: int, prefix_chars: int, prompt_chars: int) -> float | None:
    """Sum of the echoed log-probabilities of the prompt tokens inside [prefix_chars, prompt_chars).

    Offsets count from the echoed text, which may start with special tokens the prompt did not have ("<bos>"),
    so they are aligned on the prompt's end: the first generated token starts where the prompt ends."""
    offsets, values = logprobs.text_offset, logprobs.token_logprobs
    prompt_tokens = len(offsets) - generated
    if prompt_tokens <= 0 or prompt_tokens >= len(offsets):
        return None
    shift = offsets[prompt_tokens] - prompt_chars
    picked = [v for o, v in zip(offsets[:prompt_tokens], values) if o - shift >= prefix_chars]
    if not picked or any(v is None for v in picked):
        return None
    return float(sum(picked))  # finite values can still sum to -inf: the labeler drops that text as unscorable
