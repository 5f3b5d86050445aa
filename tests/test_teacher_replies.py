"""Property tests (hypothesis) of what an OpenAI-compatible endpoint can send back: any JSON value, any bytes, a
good reply with any part of it replaced, is either read as the reply asked for or is a BadReply, and nothing
else; a good reply reads back as it was sent. Through the backend (an in-memory transport, any status), no reply
raises out of it; through the labeler, no log-probability, NaN and inf included, gives anything but finite
probabilities or a drop reason. The same spoils from a real HTTP server are in test_teacher_spoiled_replies.py."""
import itertools
import json
import math
import random

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgkd.basics.dataset import Label
from pgkd.teacher.backends.base import Capabilities, SamplingSpec
from pgkd.teacher.backends.openai_http import OpenAIHTTPBackend
from pgkd.teacher.backends.openai_replies import (
    BadReply,
    ChatReply,
    EchoReply,
    ModelList,
    ScoredChatReply,
    TextReply,
    read_reply,
)
from pgkd.teacher.labeler import UNSCORABLE, UNSCORED, SoftLabeler
from pgkd.teacher.prompts import PromptBuilder

SHAPES = [TextReply, ChatReply, EchoReply, ScoredChatReply, ModelList]
FIELDS = ["choices", "usage", "text", "message", "content", "logprobs", "token", "logprob", "top_logprobs",
          "text_offset", "token_logprobs", "prompt_tokens", "completion_tokens", "data", "id", "index"]

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
keys = st.sampled_from(FIELDS) | st.text(max_size=8)  # the fields pgkd reads, so random values reach deep
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner,
                                                                                                 max_size=5),
                           max_leaves=25)
logprobs = st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)
usages = st.fixed_dictionaries({"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**6)})
texts = st.text(max_size=30)


def text_replies():
    return st.fixed_dictionaries({"choices": st.lists(st.fixed_dictionaries({"text": texts, "index": st.integers()}),
                                                      min_size=1, max_size=3)},
                                 optional={"usage": usages, "id": texts})


def chat_replies():
    message = st.fixed_dictionaries({"role": st.just("assistant"), "content": st.none() | texts})
    return st.fixed_dictionaries({"choices": st.lists(st.fixed_dictionaries({"message": message}), min_size=1,
                                                      max_size=3)}, optional={"usage": usages})


@st.composite
def echo_replies(draw):
    n = draw(st.integers(1, 12))
    offsets = sorted(draw(st.lists(st.integers(0, 200), min_size=n, max_size=n)))
    values = [None] + draw(st.lists(logprobs, min_size=n - 1, max_size=n - 1))
    return {"choices": [{"text": draw(texts), "logprobs": {"text_offset": offsets, "token_logprobs": values}}],
            "usage": {"prompt_tokens": n, "completion_tokens": draw(st.integers(0, n))}}


def scored_chat_replies():
    top = st.fixed_dictionaries({"token": texts, "logprob": logprobs})
    token = st.fixed_dictionaries({"token": texts, "logprob": logprobs, "top_logprobs": st.lists(top, max_size=5)})
    choice = st.fixed_dictionaries({"message": st.fixed_dictionaries({"content": texts}),
                                    "logprobs": st.fixed_dictionaries({"content": st.lists(token, min_size=1,
                                                                                           max_size=3)})})
    return st.fixed_dictionaries({"choices": st.lists(choice, min_size=1, max_size=2)})


QUIET = settings(database=None, deadline=None)  # nothing written into the tree; no timing flakes on a busy CI

GOOD = {TextReply: text_replies(), ChatReply: chat_replies(), EchoReply: echo_replies(),
        ScoredChatReply: scored_chat_replies()}


def read_or_bad(shape, body):
    """What a reader may do: return the shape, or raise BadReply. Anything else fails the test."""
    try:
        reply = read_reply(shape, body)
    except BadReply as exc:
        assert str(exc).startswith(f"not an OpenAI {shape.__name__}")
        return None
    assert isinstance(reply, shape)
    assert all(math.isfinite(v) for v in numbers(reply.model_dump()))
    return reply


def numbers(value):
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)


@QUIET
@given(value=json_values, shape=st.sampled_from(SHAPES))
def test_any_json_value_is_a_reply_or_a_bad_reply(value, shape):
    read_or_bad(shape, json.dumps(value))  # NaN and Infinity included, as Python writes them


@QUIET
@given(body=st.binary(max_size=300), shape=st.sampled_from(SHAPES))
def test_any_bytes_are_a_reply_or_a_bad_reply(body, shape):
    read_or_bad(shape, body)


@QUIET
@given(data=st.data(), shape=st.sampled_from(list(GOOD)))
def test_a_good_reply_reads_back_as_it_was_sent(data, shape):
    sent = data.draw(GOOD[shape])
    reply = read_or_bad(shape, json.dumps(sent))
    assert reply is not None, sent
    if shape is TextReply:
        assert [c.text for c in reply.choices] == [c["text"] for c in sent["choices"]]
    elif shape is ChatReply:
        assert [c.message.content for c in reply.choices] == [c["message"]["content"] for c in sent["choices"]]
    elif shape is EchoReply:
        logprobs = sent["choices"][0]["logprobs"]
        assert reply.choices[0].logprobs.text_offset == logprobs["text_offset"]
        assert reply.choices[0].logprobs.token_logprobs == logprobs["token_logprobs"]
        assert reply.usage.completion_tokens == sent["usage"]["completion_tokens"]
    else:
        first = sent["choices"][0]["logprobs"]["content"][0]
        read = reply.choices[0].logprobs.content[0]
        assert (read.token, read.logprob) == (first["token"], first["logprob"])
        assert [(t.token, t.logprob) for t in read.top_logprobs] == [(t["token"], t["logprob"])
                                                                     for t in first["top_logprobs"]]
    assert read_reply(shape, reply.model_dump_json()) == reply


def paths(value, at=()):
    """Every place in a JSON value, the whole of it included."""
    yield at
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, at + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, at + (index,))


def replaced(value, at, new):
    if not at:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[at[0]] = replaced(value[at[0]], at[1:], new)
    return copy


@QUIET
@given(data=st.data(), shape=st.sampled_from(list(GOOD)), new=json_values)
def test_a_good_reply_with_any_part_spoiled_is_a_reply_or_a_bad_reply(data, shape, new):
    sent = data.draw(GOOD[shape])
    at = data.draw(st.sampled_from(list(paths(sent))))
    read_or_bad(shape, json.dumps(replaced(sent, at, new)))


# --- through the backend: no reply raises out of it -----------------------------------------------------------

bodies = (json_values.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=200)
          | st.sampled_from(list(GOOD)).flatmap(lambda shape: GOOD[shape]).map(lambda v: json.dumps(v).encode()))
statuses = st.sampled_from([200, 200, 200, 400, 404, 500, 502])


def over(answers: list[tuple[int, bytes]]) -> OpenAIHTTPBackend:
    """A backend whose endpoint answers each request with the next (status, body), in memory."""
    backend = OpenAIHTTPBackend(model="m", base_url="http://endpoint.invalid/v1", api_key_env=None, timeout_s=1,
                                max_retries=0, concurrency=1, max_consecutive_failures=10**6,
                                capabilities=Capabilities(chat=True, guided_choice=True))
    queue = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        status, body = queue.pop(0) if queue else (503, b"")
        return httpx.Response(status, content=body)

    backend.client.close()
    backend.client = httpx.Client(base_url="http://endpoint.invalid/v1", transport=httpx.MockTransport(answer))
    return backend


@settings(max_examples=60, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=st.lists(st.tuples(statuses, bodies), min_size=4, max_size=4))
def test_no_reply_raises_out_of_the_backend(answers):
    backend = over(answers)  # four requests, one attempt each, in order
    try:
        generated = backend.generate(["a prompt", [{"role": "user", "content": "hi"}]], SamplingSpec())
        assert all(isinstance(t, str) for c in generated for t in c.texts)
        assert all(c.texts == [] and c.completion_tokens == 0 for c in generated if c.failed)
        scored = backend.continuation_logprobs(["Label:"], [" refund"])
        assert scored[0] is None or isinstance(scored[0], float)
        chat = backend.choice_logprobs([[{"role": "user", "content": "which?"}]], [["card arrival", "refund"]])
        assert chat[0] is None or all(math.isfinite(v) for v in chat[0].values())
        assert backend.failures <= len(answers)  # retryable failures only: a 400 is lost without one
    finally:
        backend.close()


# --- through the labeler: finite probabilities or a drop reason -----------------------------------------------

class FixedScores:
    """A backend (the in-process engine's contract) whose continuation log-probabilities are given."""
    model_name = "fixed"
    capabilities = Capabilities()

    def __init__(self, values: list[float]):
        self.values = values

    def choice_logprobs(self, prompts, choices):
        values = itertools.cycle(self.values)
        return [{choice: next(values) for choice in options} for options in choices]


LABELS = [Label("card_arrival", "card arrival"), Label("refund"), Label("lost_card", "lost card")]
NAMES = [label.name for label in LABELS]


def labeler(values) -> SoftLabeler:
    builder = PromptBuilder(LABELS, {"refund": ["give my money back"]}, "Customer messages")
    return SoftLabeler(FixedScores(values), builder, NAMES, 3, random.Random(0))


@QUIET
@given(values=st.lists(st.floats() | st.sampled_from([-math.inf, math.nan, -1e308]), min_size=1, max_size=8))
def test_any_log_probabilities_give_finite_probabilities_or_a_drop_reason(values):
    soft = labeler(values)
    for scores in soft.score(["my card is lost", "refund please"], [sorted(NAMES)] * 2):
        if isinstance(scores, dict):
            assert all(math.isfinite(p) and 0 <= p <= 1 for p in scores.values())
            assert sum(scores.values()) == pytest.approx(1.0)
        else:
            assert scores in (UNSCORED, UNSCORABLE)
    assert all(all(math.isfinite(v) for v in base.values()) for base in soft._content_free.values())
