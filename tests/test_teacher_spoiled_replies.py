"""Spoiled replies from a real HTTP server on 127.0.0.1, as a gateway in front of an endpoint gives them (an HTML
page with status 200, a torn body, no choices, a list, wrong types, null or NaN log-probabilities, a 502), in
turn with good ones: the backend returns the good ones' completions and scores, counts each bad one as a failed
attempt, and never raises; the teacher's batch keeps no example without finite probabilities."""
import copy
import json
import math
import random
import threading

import pytest

from pgkd.basics.dataset import Label
from pgkd.teacher.backends import openai_http
from pgkd.teacher.backends.base import Capabilities, SamplingSpec, TeacherUnavailable
from pgkd.teacher.backends.openai_http import OpenAIHTTPBackend
from pgkd.teacher.backends.openai_probe import endpoint_capabilities
from pgkd.teacher.config import teacher_settings
from pgkd.teacher.teacher import Teacher
from tests.json_endpoint import JsonEndpoint

HTML = b"<!DOCTYPE html><html><head><title>502</title></head><body><h1>Bad Gateway</h1></body></html>"
GENERATION_SPOILS = ["html", "truncated", "no_choices", "list", "wrong_types", "502"]
SCORING_SPOILS = ["html", "truncated", "no_choices", "null_logprobs", "nan_logprobs", "wrong_types", "502"]
CHAT = [{"role": "user", "content": "which label?"}]


def good_reply(path: str, body: dict, number: int) -> dict:
    """What a healthy vLLM server answers: an echo with one token per character (each -1.0) for scoring, a
    guided choice whose first token favours the first option for chat labelling, a new text otherwise."""
    usage = {"prompt_tokens": 7, "completion_tokens": 1}
    if path.endswith("/completions") and not path.endswith("/chat/completions") and body.get("echo"):
        prompt = body["prompt"]
        logprobs = {"text_offset": list(range(len(prompt) + 1)), "tokens": list(prompt) + ["!"],
                    "token_logprobs": [None] + [-1.0] * (len(prompt) - 1) + [-0.5], "top_logprobs": None}
        return {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": prompt + "!",
                                                                          "logprobs": logprobs}], "usage": usage}
    if body.get("logprobs"):
        options = (body.get("structured_outputs") or {}).get("choice") or ["refund"]
        first = options[0].split()[0]
        top = [{"token": first, "logprob": math.log(0.7), "bytes": [1]}, {"token": "zz", "logprob": math.log(0.1)}]
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": options[0]},
                             "logprobs": {"content": [{"token": first, "logprob": math.log(0.7),
                                                       "top_logprobs": top}]}}], "usage": usage}
    text = f"a brand new message number {number} about {'my card' if number % 2 else 'a refund'}"
    if path.endswith("/chat/completions"):
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}], "usage": usage}
    return {"choices": [{"index": 0, "text": text, "logprobs": None}], "usage": usage}


def spoiled(kind: str, good: dict) -> tuple[int, dict | list | bytes]:
    bad = copy.deepcopy(good)
    if kind == "html":
        return 200, HTML
    if kind == "truncated":
        whole = json.dumps(good).encode()
        return 200, whole[:len(whole) // 2]
    if kind == "no_choices":
        return 200, {"object": "error", "message": "the model is overloaded"}
    if kind == "list":
        return 200, [good]
    if kind == "wrong_types":
        return 200, {"choices": [42], "usage": {"prompt_tokens": "7"}}
    if kind == "null_logprobs":
        bad["choices"][0]["logprobs"] = None
        return 200, bad
    if kind == "nan_logprobs":
        logprobs = bad["choices"][0]["logprobs"]
        if "content" in logprobs:
            logprobs["content"][0]["logprob"] = logprobs["content"][0]["top_logprobs"][0]["logprob"] = math.nan
        else:
            logprobs["token_logprobs"][-2] = math.nan
        return 200, bad
    assert kind == "502"
    return 502, {"error": "bad gateway"}


class SpoilingEndpoint(JsonEndpoint):
    """/v1/completions and /v1/chat/completions answering each request with the next scripted spoil (None: a
    good reply), then good replies; or, with `share`, a random spoil of `kinds` for that share of requests."""

    def __init__(self, script: list[str | None] = (), share: float = 0.0, kinds: list[str] = (), seed: int = 0):
        self.script, self.share, self.kinds = list(script), share, list(kinds)
        self.rng = random.Random(seed)
        self.served: list[str | None] = []
        self.lock = threading.Lock()
        super().__init__(self.answer_next)

    def answer_next(self, path: str, body: dict):
        with self.lock:
            if self.script:
                kind = self.script.pop(0)
            else:
                kind = self.rng.choice(self.kinds) if self.rng.random() < self.share else None
            if kind in ("null_logprobs", "nan_logprobs") and not body.get("logprobs"):
                kind = "html"  # asked for no log-probabilities: spoil it another way
            self.served.append(kind)
            good = good_reply(path, body, len(self.served))
        return (200, good) if kind is None else spoiled(kind, good)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(openai_http, "BACKOFF_START_S", 0.001)


@pytest.fixture
def spoiling():
    made = []

    def make(*args, **kwargs):
        made.append(SpoilingEndpoint(*args, **kwargs))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


def backend(url: str, **kwargs) -> OpenAIHTTPBackend:
    kwargs = {"max_retries": 0, "concurrency": 1} | kwargs  # one at a time: the script is served in order
    return OpenAIHTTPBackend(model="m", base_url=url, api_key_env=None, timeout_s=5,
                             capabilities=Capabilities(chat=True, guided_choice=True), **kwargs)


def interleaved(spoils: list[str]) -> list[str | None]:
    return [kind for spoil in spoils for kind in (spoil, None)]


@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
def test_each_spoiled_generation_reply_is_a_failed_request_and_the_good_ones_are_kept(spoiling, chat):
    endpoint = spoiling(interleaved(GENERATION_SPOILS))
    teacher = backend(endpoint.url)
    prompts = [CHAT if chat else f"prompt {i}" for i in range(2 * len(GENERATION_SPOILS))]
    out = teacher.generate(prompts, SamplingSpec())
    assert [c.failed for c in out] == [True, False] * len(GENERATION_SPOILS)
    assert all(c.texts == [] and c.completion_tokens == 0 for c in out[::2])
    assert all(c.texts[0].startswith("a brand new message") and c.completion_tokens == 1 for c in out[1::2])
    assert teacher.failures == len(GENERATION_SPOILS) and teacher.lost_in_a_row == 0


def test_each_spoiled_scoring_reply_is_a_failed_request_and_the_good_ones_are_scored(spoiling):
    endpoint = spoiling(interleaved(SCORING_SPOILS))
    teacher = backend(endpoint.url)
    n = len(SCORING_SPOILS)
    scores = teacher.continuation_logprobs(["Label:"] * 2 * n, [" refund"] * 2 * n)
    assert scores[::2] == [None] * n
    assert scores[1::2] == [pytest.approx(-7.0)] * n  # " refund": seven characters, -1.0 each
    assert teacher.failures == n


def test_each_spoiled_chat_labelling_reply_is_a_failed_request_and_the_good_ones_are_scored(spoiling):
    endpoint = spoiling(interleaved(SCORING_SPOILS))
    teacher = backend(endpoint.url)
    n = len(SCORING_SPOILS)
    scores = teacher.choice_logprobs([CHAT] * 2 * n, [["card arrival", "refund"]] * 2 * n)
    assert scores[::2] == [None] * n
    for good in scores[1::2]:
        assert good["card arrival"] == pytest.approx(math.log(0.7)) and math.isfinite(good["refund"])
    assert teacher.failures == n


def test_a_spoiled_reply_is_retried_like_a_5xx(spoiling):
    endpoint = spoiling(interleaved(SCORING_SPOILS))
    teacher = backend(endpoint.url, max_retries=1)
    scores = teacher.continuation_logprobs(["Label:"] * len(SCORING_SPOILS), [" refund"] * len(SCORING_SPOILS))
    assert scores == [pytest.approx(-7.0)] * len(SCORING_SPOILS)  # each bad reply's retry got a good one
    assert teacher.failures == len(SCORING_SPOILS) and len(endpoint.served) == 2 * len(SCORING_SPOILS)


def test_an_endpoint_that_only_answers_html_stops_the_replica_after_the_bound(spoiling):
    endpoint = spoiling(["html"] * 10)
    teacher = backend(endpoint.url, max_consecutive_failures=3)
    assert [c.failed for c in teacher.generate(["a", "b"], SamplingSpec())] == [True, True]
    with pytest.raises(TeacherUnavailable, match="3 requests in a row failed.*HTTP 200 with a bad reply"):
        teacher.generate(["c"], SamplingSpec())


def test_the_probe_takes_a_page_with_status_200_for_no(spoiling):
    endpoint = spoiling(["html", None, "no_choices"])  # chat, completions, JSON-schema replies (then guided choice)
    teacher = backend(endpoint.url)
    capabilities = endpoint_capabilities(teacher.client, "m")
    assert (capabilities.chat, capabilities.json_schema, capabilities.guided_choice) == (False, False, False)
    assert any("no chat (HTTP 200 from /chat/completions with a bad reply" in note for note in capabilities.notes)
    assert any("no JSON-schema replies (HTTP 200" in note for note in capabilities.notes)


LABELS = [Label("card_arrival", "card arrival"), Label("refund")]
SEEDS = [{"text": "where is my new card", "label": "card_arrival"},
         {"text": "my card has still not come", "label": "card_arrival"},
         {"text": "please give me my money back", "label": "refund"},
         {"text": "I want a refund for this order", "label": "refund"}]


def chat_teacher(url: str, **kwargs) -> Teacher:
    http = OpenAIHTTPBackend(model="m", base_url=url, api_key_env=None, timeout_s=5, max_retries=0,
                             max_consecutive_failures=1000,
                             capabilities=Capabilities(chat=True, chat_default=True, guided_choice=True), **kwargs)
    config = teacher_settings(backend="openai", model="m", base_url=url, classes_per_batch=2, examples_per_class=6,
                              min_words=2, near_duplicate_threshold=1.0, min_confidence=0.0, label_check="relabel")
    return Teacher(http, LABELS, SEEDS, [], config, "teacher-0", "Customer messages to a bank")


def all_finite(probs: dict | None) -> bool:
    return probs is not None and all(isinstance(v, float) and math.isfinite(v) for v in probs.values())


def test_a_teacher_batch_through_a_gateway_that_spoils_a_third_of_replies(spoiling):
    endpoint = spoiling(share=0.35, kinds=SCORING_SPOILS + ["list"], seed=3)
    teacher = chat_teacher(endpoint.url, concurrency=1)  # one at a time: the same requests are spoiled each run
    kept, failed, unscored = 0, 0, 0
    for batch in range(3):
        examples, stats = teacher.write_batch(None, batch=batch)
        assert stats.kept == len(examples)
        for example in examples:
            assert all_finite(example.soft_label) and all_finite(example.candidate_probs)
            assert sum(example.candidate_probs.values()) == pytest.approx(1.0)
        kept, failed, unscored = kept + stats.kept, failed + stats.failed_requests, unscored + stats.dropped["unscored"]
    assert kept > 0 and failed > 0 and unscored > 0
    assert teacher.backend.failures == sum(kind is not None for kind in endpoint.served)


def test_a_teacher_whose_labelling_replies_are_all_nan_keeps_nothing():
    class NaNLabels(SpoilingEndpoint):
        def answer_next(self, path, body):
            status, reply = super().answer_next(path, body)
            return spoiled("nan_logprobs", reply) if body.get("logprobs") else (status, reply)

    endpoint = NaNLabels()
    try:
        teacher = chat_teacher(endpoint.url)
        examples, stats = teacher.write_batch(None, batch=0)
        assert examples == [] and stats.kept == 0 and stats.generated > 0
        assert stats.dropped["unscored"] == stats.generated - sum(
            n for reason, n in stats.dropped.items() if reason != "unscored")
        assert not teacher.labeler._content_free  # no baseline was kept from a NaN reply
    finally:
        endpoint.close()
