"""Any OpenAI-compatible completions endpoint over HTTP (`vllm serve`, a hosted API).

Each prompt is one request, at most `concurrency` in flight. A request that fails with a retryable error
(connection, timeout, 408/409/429/5xx) is retried with exponential backoff; any other error, or running out of
retries, loses that request only: an empty Completion marked failed (or None when scoring), logged and counted
by the caller. `max_consecutive_failures` lost requests in a row (no success between) mean the endpoint is gone:
TeacherUnavailable, which stops the replica. probe() tries the endpoint once before a run starts anything.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from basics.errors import InputError
from bus.client import redact
from teacher.backends.base import Completion, SamplingSpec, TeacherUnavailable

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 8.0


class RequestFailed(Exception):
    """One request gave up: a non-retryable error, or retries ran out."""


class OpenAIHTTPBackend:
    def __init__(self, model: str, base_url: str, served_model: str | None = None, api_key_env: str | None = None,
                 timeout_s: float = 120, max_retries: int = 4, concurrency: int = 8, max_consecutive_failures: int = 16):
        self.model_name = served_model or model
        self.max_retries, self.max_consecutive_failures = max_retries, max_consecutive_failures
        self.where = redact(base_url)
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=auth_headers(api_key_env),
                                   timeout=timeout_s, limits=httpx.Limits(max_connections=concurrency))
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="teacher-http")
        self.failures = 0  # failed attempts, retries included
        self.lost_in_a_row, self.last_error = 0, ""
        self.lock = threading.Lock()

    def generate(self, prompts: list[str], spec: SamplingSpec) -> list[Completion]:
        body = {"model": self.model_name, "n": spec.n, "temperature": spec.temperature, "top_p": spec.top_p,
                "max_tokens": spec.max_tokens, "stop": list(spec.stop)}
        if spec.seed is not None:
            body["seed"] = spec.seed
        completions = list(self.pool.map(lambda p: self._complete(body | {"prompt": p}), prompts))
        self._give_up_if_gone()
        return completions

    def _complete(self, body: dict) -> Completion:
        try:
            reply = self._post("/completions", body)
        except RequestFailed as exc:
            log.warning("completion request lost: %s", exc)
            self._lost(exc)
            return Completion(texts=[], prompt_tokens=0, completion_tokens=0, failed=True)
        self._answered()
        usage = reply.get("usage") or {}
        return Completion(texts=[c.get("text", "") for c in reply.get("choices", [])],
                          prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0))

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
            reply = self._post("/completions", body)
            logprobs, generated = reply["choices"][0]["logprobs"], reply["usage"]["completion_tokens"]
        except (RequestFailed, KeyError, IndexError, TypeError) as exc:
            log.warning("scoring request lost: %s", exc)
            if isinstance(exc, RequestFailed):
                self._lost(exc)
            else:  # it answered, with something unusable
                self._answered()
            return None
        self._answered()
        return continuation_sum(logprobs, generated, len(prefix), len(prefix + continuation))

    def _post(self, path: str, body: dict) -> dict:
        delay = BACKOFF_START_S
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.post(path, json=body)
            except httpx.TransportError as exc:  # refused, reset, timed out: the server may come back
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return response.json()
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRYABLE_STATUS:
                    raise RequestFailed(error)
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
                                     f"(teacher.http.max_consecutive_failures); last: {self.last_error}")

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.client.close()


def continuation_sum(logprobs: dict, generated: int, prefix_chars: int, prompt_chars: int) -> float | None:
    """Sum of the echoed log-probabilities of the prompt tokens inside [prefix_chars, prompt_chars).

    Offsets count from the echoed text, which may start with special tokens the prompt did not have ("<bos>"),
    so they are aligned on the prompt's end: the first generated token starts where the prompt ends."""
    offsets, values = logprobs.get("text_offset") or [], logprobs.get("token_logprobs") or []
    prompt_tokens = len(offsets) - generated
    if prompt_tokens <= 0 or prompt_tokens >= len(offsets):
        return None
    shift = offsets[prompt_tokens] - prompt_chars
    picked = [v for o, v in zip(offsets[:prompt_tokens], values) if o - shift >= prefix_chars]
    if not picked or any(v is None for v in picked):
        return None
    return float(sum(picked))


def auth_headers(api_key_env: str | None) -> dict[str, str]:
    key = os.environ.get(api_key_env) if api_key_env else None
    return {"Authorization": f"Bearer {key}"} if key else {}


def probe(base_url: str, model: str, api_key_env: str | None, timeout_s: float, **_) -> None:
    """Ask the endpoint for its models (or, where it has no model list, for one token), once, within timeout_s.
    Unreachable, unauthorised, or not serving the model: an InputError with the URL, credentials hidden."""
    where, field = redact(base_url), "teacher.http.base_url"
    headers = auth_headers(api_key_env)
    try:
        with httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s) as client:
            response = client.get("/models")
            if response.status_code in (404, 405):  # no model list here: one tiny completion instead
                response = client.post("/completions", json={"model": model, "prompt": "ping", "max_tokens": 1})
    except httpx.TransportError as exc:
        raise InputError(f"teacher endpoint {where} is unreachable within {timeout_s:g}s "
                         f"(teacher.http.timeout_s): {type(exc).__name__}: {exc}", field=field) from None
    if response.status_code in (401, 403):
        how = f"${api_key_env} is set but was refused" if headers else f"no key was sent (${api_key_env} is unset)"
        raise InputError(f"teacher endpoint {where} refused access (HTTP {response.status_code}): {how}",
                         field="teacher.http.api_key_env")
    if response.status_code != 200:
        raise InputError(f"teacher endpoint {where} answered HTTP {response.status_code}: {response.text[:200]}",
                         field=field)
    served = served_models(response)
    if served is not None and model not in served:
        raise InputError(f"teacher endpoint {where} does not serve '{model}' (it serves {served[:10]})",
                         field="teacher.http.served_model")


def served_models(response: httpx.Response) -> list[str] | None:
    """The model ids of a /models answer; None when the answer is not such a list."""
    try:
        data = response.json().get("data")
        return [item["id"] for item in data] if isinstance(data, list) else None
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
