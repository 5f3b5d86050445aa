"""The OpenAI-compatible HTTP backend against small real HTTP servers on 127.0.0.1: retries on retryable errors
only, bounded concurrency, one lost request losing itself only. The real `vllm serve` test is in
test_integration_http.py."""
import socket
import threading
import time

import pytest

from pgkd.teacher.backends import openai_http
from pgkd.teacher.backends.base import Capabilities, SamplingSpec
from pgkd.teacher.backends.openai_http import OpenAIHTTPBackend
from pgkd.teacher.backends.openai_replies import EchoLogprobs
from tests.json_endpoint import JsonEndpoint


class ScriptedEndpoint(JsonEndpoint):
    """A /v1/completions endpoint that answers each request with the next scripted status (then 200)."""

    def __init__(self, statuses: list[int], delay_s: float = 0.0):
        self.statuses, self.delay_s = list(statuses), delay_s
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        super().__init__(self.scripted)

    def scripted(self, path: str, body: dict) -> tuple[int, dict]:
        with self.lock:
            self.requests.append(body)
            status = self.statuses.pop(0) if self.statuses else 200
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        time.sleep(self.delay_s)
        reply = {"choices": [{"text": " reply to " + body["prompt"][-8:]}],
                 "usage": {"prompt_tokens": 5, "completion_tokens": 3}}
        with self.lock:
            self.in_flight -= 1
        return status, reply if status == 200 else {"error": "scripted"}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(openai_http, "BACKOFF_START_S", 0.01)


@pytest.fixture
def endpoint_factory():
    made = []

    def make(*args, **kwargs):
        made.append(ScriptedEndpoint(*args, **kwargs))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


def backend(url: str, **kwargs):
    return OpenAIHTTPBackend(model="m", base_url=url, api_key_env=None, timeout_s=5,
                             capabilities=Capabilities(), **kwargs)  # completion only, unprobed


def test_retryable_status_is_retried_and_succeeds(endpoint_factory):
    endpoint = endpoint_factory([503, 429])
    out = backend(endpoint.url, max_retries=3).generate(["hello"], SamplingSpec())
    assert out[0].texts == [" reply to hello"] and out[0].completion_tokens == 3
    assert len(endpoint.requests) == 3


def test_non_retryable_status_loses_that_request_only(endpoint_factory):
    endpoint = endpoint_factory([400])
    teacher = backend(endpoint.url, max_retries=3, concurrency=1)
    out = teacher.generate(["first", "second"], SamplingSpec())
    assert out[0].texts == [] and out[0].completion_tokens == 0
    assert out[1].texts == [" reply to second"]
    assert len(endpoint.requests) == 2  # the 400 was not retried


def test_retries_run_out_on_an_unreachable_server():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    teacher = backend(f"http://127.0.0.1:{port}/v1", max_retries=2)
    assert teacher.generate(["x"], SamplingSpec())[0].texts == []
    assert teacher.continuation_logprobs(["a"], [" b"]) == [None]
    assert teacher.failures == 6  # 3 attempts for each of the two requests


def test_concurrency_is_bounded(endpoint_factory):
    endpoint = endpoint_factory([], delay_s=0.1)
    backend(endpoint.url, concurrency=3).generate([f"p{i}" for i in range(12)], SamplingSpec())
    assert len(endpoint.requests) == 12 and 1 < endpoint.max_in_flight <= 3


def test_request_body_carries_the_sampling_spec(endpoint_factory):
    endpoint = endpoint_factory([])
    backend(endpoint.url).generate(["p"], SamplingSpec(n=1, temperature=0.5, top_p=0.9, max_tokens=7, seed=3))
    sent = endpoint.requests[0]
    assert (sent["model"], sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"]) == \
        ("m", 0.5, 0.9, 7, 3)
    assert sent["stop"] == ["\n"]


def test_continuation_sum_aligns_on_the_prompt_end():
    # echoed text "<bos>ab: cd" + generated "\n": offsets start 5 chars late because of "<bos>"
    logprobs = EchoLogprobs(text_offset=[0, 5, 7, 8, 10, 11], token_logprobs=[None, -1.0, -0.5, -2.0, -3.0, -9.0])
    prompt = "ab: cd"  # prefix "ab:" (3 chars), continuation " cd" -> tokens " c" (offset 8) and "d" (offset 10)
    assert openai_http.continuation_sum(logprobs, 1, 3, len(prompt)) == pytest.approx(-5.0)
    assert openai_http.continuation_sum(logprobs, 1, 6, len(prompt)) is None  # nothing after the prefix


def test_the_api_key_crosses_a_network_only_over_https(monkeypatch, tmp_path):
    """The key used to go as a Bearer header over plain http to whatever host base_url named."""
    from pgkd.teacher.backends.openai_probe import auth_headers
    from pgkd.teacher.config import teacher_settings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    with pytest.raises(ValueError, match="would cross the network in clear to gateway.example"):
        teacher_settings(backend="openai", base_url="http://gateway.example/v1")
    for url in ("https://gateway.example/v1", "http://127.0.0.1:8000/v1", "http://localhost:8000/v1"):
        assert teacher_settings(backend="openai", base_url=url).base_url == url
    assert teacher_settings(backend="openai", base_url="http://gateway.example/v1", allow_insecure=True)
    assert auth_headers("OPENAI_API_KEY", "http://gateway.example/v1") == {}  # the last guard sends nothing
    assert auth_headers("OPENAI_API_KEY", "https://gateway.example/v1") == {"Authorization": "Bearer sk-secret"}
    monkeypatch.delenv("OPENAI_API_KEY")
    assert teacher_settings(backend="openai", base_url="http://gateway.example/v1")  # no key, nothing to leak


def test_httpx_request_lines_stay_off_the_terminal():
    """An INFO line per HTTP request (the endpoint probe's) reached the terminal."""
    import logging

    from pgkd.basics.logs import quiet_http_clients

    quiet_http_clients()
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
