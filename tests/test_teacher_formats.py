"""Chat and completion teachers, structured and plain generation: the prompt formats, the JSON-schema replies
and their parsing, the capability probe and its fallbacks, against a fake OpenAI-compatible endpoint on
127.0.0.1 that can lack chat, schemas or guided choice. The real vLLM server is in test_integration_http.py."""
import json
import math

import pytest

from pgkd.teacher.config import teacher_settings
from pgkd.basics.dataset import Label
from pgkd.teacher.backends import openai_http
from pgkd.teacher.backends.base import Capabilities, Completion, SamplingSpec
from pgkd.teacher.backends.openai_http import OpenAIHTTPBackend
from pgkd.teacher.formats import resolve_format
from pgkd.teacher.parsing import parse_json_reply
from pgkd.teacher.prompts import PromptBuilder, examples_schema
from pgkd.teacher.teacher import Teacher
from tests.json_endpoint import JsonEndpoint
from tests.scripted_backend import ScriptedBackend

LABELS = [Label("card_arrival", "card arrival"), Label("refund")]
SEEDS = [{"text": "where is my new card", "label": "card_arrival"},
         {"text": "my card has still not come", "label": "card_arrival"},
         {"text": "please give me my money back", "label": "refund"},
         {"text": "I want a refund for this order", "label": "refund"}]


class FakeOpenAI(JsonEndpoint):
    """/v1/completions and /v1/chat/completions. A missing feature answers 400 as vLLM does (a model without a
    chat template, an unknown field); `json_reply` is what a structured generation returns."""

    def __init__(self, chat=True, schema=True, choice=True, completions=True, json_reply=None):
        self.chat, self.schema, self.choice, self.completions = chat, schema, choice, completions
        self.json_reply = json_reply or (lambda n: json.dumps({"examples": [f"new text number {i} here"
                                                                              for i in range(n)]}))
        self.requests: list[tuple[str, dict]] = []
        super().__init__(self.reply)

    def reply(self, path: str, body: dict) -> tuple[int, dict]:
        self.requests.append((path, body))
        chat = path.endswith("/chat/completions")
        if (chat and not self.chat) or (not chat and not self.completions):
            return 400 if chat else 404, {"error": "no chat template" if chat else "not found"}
        if "response_format" in body and not self.schema:
            return 400, {"error": "response_format is not supported"}
        if "structured_outputs" in body and not self.choice:
            return 400, {"error": "extra fields not permitted: structured_outputs"}
        usage = {"prompt_tokens": 7, "completion_tokens": 5}
        if chat and body.get("logprobs"):  # labelling: the reply is the first choice, top tokens favour it
            options = (body.get("structured_outputs") or {}).get("choice") or ["refund"]
            first = options[0].split()[0]
            top = [{"token": first, "logprob": math.log(0.7)}, {"token": "ref", "logprob": math.log(0.2)},
                   {"token": "zzz", "logprob": math.log(0.05)}]
            return 200, {"choices": [{"message": {"content": options[0]},
                                      "logprobs": {"content": [{"token": first, "logprob": math.log(0.7),
                                                                "top_logprobs": top}]}}], "usage": usage}
        if "response_format" in body:
            schema = body["response_format"]["json_schema"]["schema"]
            n = schema.get("properties", {}).get("examples", {}).get("maxItems", 1)
            text = self.json_reply(n)
        else:
            text = "a plain new message about my card"
        choice = {"message": {"content": text}} if chat else {"text": text}
        return 200, {"choices": [choice], "usage": usage}


@pytest.fixture
def fake_factory():
    made = []

    def make(**kwargs):
        made.append(FakeOpenAI(**kwargs))
        return made[-1]

    yield make
    for fake in made:
        fake.close()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    monkeypatch.setattr(openai_http, "BACKOFF_START_S", 0.01)


def http(url: str, model: str = "some-instruct-model"):
    settings = teacher_settings(backend="openai", model=model, base_url=url, api_key_env=None, timeout_s=5,
                                max_retries=0)
    return OpenAIHTTPBackend.from_settings(settings, replica=0)


def teacher_over(backend, **config) -> Teacher:
    config = teacher_settings(**{"classes_per_batch": 2, "examples_per_class": 3, "min_words": 2,
                              "near_duplicate_threshold": 1.0, "min_confidence": 0.0} | config)
    return Teacher(backend, LABELS, SEEDS, [], config, "t0", "Customer messages to a bank")


# --- the probe and the format decision ------------------------------------------------------------------------

def test_probe_finds_what_the_endpoint_can_do(fake_factory):
    full = http(fake_factory().url).capabilities
    assert (full.chat, full.json_schema, full.guided_choice, full.chat_default) == (True, True, True, True)
    bare = http(fake_factory(chat=False, schema=False).url).capabilities
    assert (bare.chat, bare.json_schema, bare.chat_default) == (False, False, False)
    assert any("no chat (HTTP 400" in n for n in bare.notes) and any("JSON-schema" in n for n in bare.notes)


def test_a_base_model_name_on_an_endpoint_with_completions_keeps_the_completion_format(fake_factory):
    assert not http(fake_factory().url, model="gemma-3-270m").capabilities.chat_default
    assert http(fake_factory(completions=False).url, model="gpt-house").capabilities.chat_default


def test_chat_asked_of_an_endpoint_without_chat_falls_back_with_a_reason(fake_factory):
    backend = http(fake_factory(chat=False).url)
    chosen = resolve_format(teacher_settings(prompt_format="chat"), backend.capabilities)
    assert chosen.prompt_format == "completion" and not chosen.structured
    assert "completion format is used instead" in chosen.notes[0] and "no chat (HTTP 400" in chosen.notes[0]


def test_structured_on_without_schema_support_falls_back_to_plain_parsing():
    chosen = resolve_format(teacher_settings(structured="on"), Capabilities(chat=True, json_schema=False))
    assert not chosen.structured and "parsed from plain text" in chosen.notes[0]
    assert resolve_format(teacher_settings(), Capabilities(chat=True, json_schema=True, chat_default=True)).structured


# --- prompts --------------------------------------------------------------------------------------------------

def test_each_format_has_its_own_templates_and_a_user_folder_overrides_one_file(tmp_path):
    demos = {"card_arrival": ["where is my new card"], "refund": ["money back please"]}
    completion = PromptBuilder(LABELS, demos, "Customer messages")
    chat = PromptBuilder(LABELS, demos, "Customer messages", prompt_format="chat")
    assert isinstance(completion.classify_prompt("x", ["refund"]), str)
    assert completion.classify_prompt("x", ["refund"]).endswith("Label:")
    message = chat.classify_prompt("my card is late", ["card_arrival", "refund"])
    assert message[0]["role"] == "user" and '"card arrival", "refund"' in message[0]["content"]
    assert (completion.label_answer("card_arrival"), chat.label_answer("card_arrival")) == (" card arrival",
                                                                                           "card arrival")
    (tmp_path / "chat").mkdir()
    (tmp_path / "chat" / "generate_json.txt").write_text("Give {count} of {label} as JSON.")
    custom = PromptBuilder(LABELS, demos, "Customer messages", templates=tmp_path, prompt_format="chat")
    from pgkd.teacher.prompts import ClassTask
    assert custom.generation_prompt(ClassTask("refund", 3), 2, count=3)[0]["content"] == "Give 3 of refund as JSON."
    assert "Label a message" in custom.classify_prompt("x", ["refund"])[0]["content"]  # pgkd's own file


def test_the_examples_schema_holds_exactly_count_strings():
    schema = examples_schema(4)["properties"]["examples"]
    assert (schema["minItems"], schema["maxItems"], schema["items"]["type"]) == (4, 4, "string")


# --- parsing structured replies ---------------------------------------------------------------------------------

def test_a_malformed_json_reply_is_dropped_whole_and_a_plain_one_is_read_by_lines():
    assert parse_json_reply('{"examples": ["a b c", "d e f"]}', True).texts == ["a b c", "d e f"]
    assert parse_json_reply('{"examples": ["a b c", "d e', True).reason == "schema_invalid"
    assert parse_json_reply('{"examples": [1, 2]}', True).reason == "schema_invalid"
    assert parse_json_reply("one text\ntwo text", False).texts == ["one text", "two text"]


def test_a_malformed_reply_loses_itself_only_and_is_counted_as_its_own_reason():
    replies = ['{"examples": ["my card has not come yet", "card still missing today", "no card in the post"]}',
               '{"examples": ["a cut off rep',  # truncated: the length limit hit mid-string
               '{"examples": ["money back for my order", "refund my last payment now", "I returned it, refund"]}',
               'not json at all']
    backend = ScriptedBackend(replies, capabilities=Capabilities(chat=True, json_schema=True, chat_default=True))
    examples, stats = teacher_over(backend, label_check="off", examples_per_request=3,
                                   examples_per_class=6).write_batch(None, batch=0)
    assert backend.specs[0].json_schema == examples_schema(3) and backend.specs[0].stop == ()
    assert stats.dropped["schema_invalid"] == 6  # two replies of three texts each
    assert stats.generated == 12 and len(examples) == 6
    assert isinstance(backend.prompts[0], list) and "Reply with JSON only" in backend.prompts[0][0]["content"]


def test_requests_split_a_class_into_examples_per_request():
    backend = ScriptedBackend([], capabilities=Capabilities(chat=True, json_schema=True, chat_default=True))
    teacher_over(backend, examples_per_class=5, examples_per_request=2).write_batch(None, batch=0)
    asked = sorted(spec.json_schema["properties"]["examples"]["maxItems"] for spec in backend.specs)
    assert asked == [1, 2]  # per class 2 + 2 + 1: one call per reply shape
    assert len(backend.prompts) == 6


def test_the_completion_format_keeps_one_text_per_request():
    backend = ScriptedBackend(["where has my card gone"] * 6)
    examples, stats = teacher_over(backend).write_batch(None, batch=0)
    assert all(spec.json_schema is None and spec.stop == ("\n",) for spec in backend.specs)
    assert all(isinstance(p, str) for p in backend.prompts) and stats.generated == 6


# --- over HTTP ---------------------------------------------------------------------------------------------------

def test_chat_prompts_go_to_chat_completions_with_a_json_schema(fake_factory):
    fake = fake_factory()
    backend = http(fake.url)
    out = backend.generate([[{"role": "user", "content": "write 2"}]], SamplingSpec(json_schema=examples_schema(2)))
    assert out[0].structured and json.loads(out[0].texts[0])["examples"][1] == "new text number 1 here"
    path, body = fake.requests[-1]
    assert path.endswith("/chat/completions") and body["messages"][0]["content"] == "write 2"
    assert body["response_format"]["json_schema"]["schema"] == examples_schema(2) and body["stop"] == []


def test_a_schema_refused_mid_run_is_sent_again_without_it_and_never_asked_again(fake_factory):
    fake = fake_factory()
    backend = http(fake.url)
    fake.schema = False  # e.g. a server restarted without guided decoding
    out = backend.generate(["write one"] * 2, SamplingSpec(json_schema=examples_schema(2)))
    assert [c.texts for c in out] == [["a plain new message about my card"]] * 2
    assert not out[0].structured and not backend.capabilities.json_schema
    assert "replies are parsed as plain text" in backend.capabilities.notes[-1]
    before = len(fake.requests)
    backend.generate(["again"], SamplingSpec(json_schema=examples_schema(2)))
    assert len(fake.requests) == before + 1 and "response_format" not in fake.requests[-1][1]


def test_chat_labelling_reads_the_soft_label_from_the_top_logprobs_of_a_guided_choice(fake_factory):
    fake = fake_factory()
    scores = http(fake.url).choice_logprobs([[{"role": "user", "content": "which?"}]], [["card arrival", "refund"]])
    assert scores[0]["card arrival"] == pytest.approx(math.log(0.7))
    assert scores[0]["refund"] == pytest.approx(math.log(0.2))
    assert fake.requests[-1][1]["structured_outputs"] == {"choice": ["card arrival", "refund"]}
    assert fake.requests[-1][1]["top_logprobs"] == openai_http.TOP_LOGPROBS


def test_chat_labelling_without_guided_choice_still_scores(fake_factory):
    fake = fake_factory(choice=False)
    backend = http(fake.url)
    scores = backend.choice_logprobs([[{"role": "user", "content": "which?"}]], [["card arrival", "refund"]])
    assert "structured_outputs" not in fake.requests[-1][1]
    assert scores[0]["refund"] > scores[0]["card arrival"]  # its reply named refund, whose first token led


def test_a_whole_chat_teacher_batch_over_http(fake_factory):
    fake = fake_factory()
    teacher = teacher_over(http(fake.url), label_check="off")
    assert (teacher.format.prompt_format, teacher.structured) == ("chat", True)
    examples, stats = teacher.write_batch(None, batch=0)
    assert stats.generated == 6 and stats.failed_requests == 0 and examples
    chat_posts = [body for path, body in fake.requests if path.endswith("/chat/completions")]
    assert any("response_format" in body for body in chat_posts) and any(body.get("logprobs") for body in chat_posts)


def test_chat_choice_scores_share_a_token_between_the_options_it_starts():
    scores = openai_http.chat_choice_scores({"card": math.log(0.6), "ref": math.log(0.3)},
                                            ["card arrival", "card linking", "refund"], "card arrival")
    assert scores["card arrival"] == pytest.approx(math.log(0.3)) == pytest.approx(scores["card linking"])
    assert scores["refund"] == pytest.approx(math.log(0.3))


def test_an_unparsed_completion_is_no_structured_reply():
    assert not Completion(texts=["x"], prompt_tokens=1, completion_tokens=1).structured
