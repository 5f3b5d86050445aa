"""Any OpenAI-compatible completions endpoint over HTTP (`vllm serve`, a hosted API).

Each prompt is one request, at most `concurrency` in flight. A request that fails with a retryable error
(connection, timeout, 408/409/429/5xx) is retried with exponential backoff; any other error, or running out of
retries, loses that request only: an empty Completion (or None when scoring), logged and counted by the caller.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from teacher.backends.base import Completion, SamplingSpec

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 8.0


class RequestFailed(Exception):
    """One request gave up: a non-retryable error, or retries ran out."""


class OpenAIHTTPBackend:
    def __init__(self, model: str, base_url: str, served_model: str | None = None, api_key_env: str | None = None,
                 timeout_s: float = 120, max_retries: int = 4, concurrency: int = 8):
        self.model_name = served_model or model
        self.max_retries = max_retries
        key = os.environ.get(api_key_env) if api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s,
                                   limits=httpx.Limits(max_connections=concurrency))
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="teacher-http")
        self.failures = 0

    def generate(self, prompts: list[str], spec: SamplingSpec) -> list[Completion]:
        body = {"model": self.model_name, "n": spec.n, "temperature": spec.temperature, "top_p": spec.top_p,
                "max_tokens": spec.max_tokens, "stop": list(spec.stop)}
        if spec.seed is not None:
            body["seed"] = spec.seed
        return list(self.pool.map(lambda p: self._complete(body | {"prompt": p}), prompts))

    def _complete(self, body: dict) -> Completion:
        try:
            reply = self._post("/completions", body)
        except RequestFailed as exc:
            log.warning("completion request lost: %s", exc)
            return Completion(texts=[], prompt_tokens=0, completion_tokens=0)
        usage = reply.get("usage") or {}
        return Completion(texts=[c.get("text", "") for c in reply.get("choices", [])],
                          prompt_tokens=usage.get("prompt_tokens", 0),
                          completion_tokens=usage.get("completion_tokens", 0))

    def continuation_logprobs(self, prefixes: list[str], continuations: list[str]) -> list[float | None]:
        """Prompt-token scoring: the endpoint echoes prefix + continuation with each token's log-probability;
        the continuation's tokens are those starting at or after the prefix's end (`text_offset`)."""
        return list(self.pool.map(self._score, prefixes, continuations))

    def _score(self, prefix: str, continuation: str) -> float | None:
        body = {"model": self.model_name, "prompt": prefix + continuation, "echo": True, "logprobs": 1,
                "max_tokens": 1, "temperature": 0.0}
        try:
            reply = self._post("/completions", body)
            logprobs, generated = reply["choices"][0]["logprobs"], reply["usage"]["completion_tokens"]
        except (RequestFailed, KeyError, IndexError, TypeError) as exc:
            log.warning("scoring request lost: %s", exc)
            return None
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
