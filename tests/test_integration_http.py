"""The HTTP teacher backend against a real vLLM OpenAI-compatible server (CPU engine, the embedded Gemma 3 270M)
started on 127.0.0.1 by this test. About a minute to start."""
import random
import socket
import subprocess
import time

import httpx
import pytest

from pgkd.teacher.config import teacher_settings
from pgkd.basics.dataset import Label
from pgkd.serve import SERVED_NAME, server_command, server_env
from pgkd.teacher.backends.base import SamplingSpec
from pgkd.teacher.backends.openai_http import OpenAIHTTPBackend
from pgkd.teacher.teacher import Teacher

pytestmark = pytest.mark.integration
START_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    port = free_port()
    log = (tmp_path_factory.mktemp("vllm") / "server.log").open("w")
    process = subprocess.Popen(server_command("embedded:gemma3-270m", port=port), env=server_env(),
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vLLM server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(2)
    raise TimeoutError(f"vLLM server not ready after {START_TIMEOUT_S}s")


def http_backend(url: str):
    settings = teacher_settings(backend="openai", model=SERVED_NAME, base_url=url, api_key_env=None, timeout_s=60,
                                concurrency=4)
    return OpenAIHTTPBackend.from_settings(settings, replica=0)


def test_generates_with_token_counts(server_url):
    backend = http_backend(server_url)
    prompt = "Messages customers send a bank about a card that has not arrived:\n- Where is my new card?\n-"
    out = backend.generate([prompt] * 3, SamplingSpec(max_tokens=24, seed=1))
    assert all(c.texts and c.texts[0].strip() for c in out)
    assert all(c.prompt_tokens > 10 and 0 < c.completion_tokens <= 24 for c in out)
    assert backend.failures == 0


def test_scores_obey_the_chain_rule(server_url):
    """log p(" card arrival" | x) == log p(" card" | x) + log p(" arrival" | x + " card"): prompt-token
    scoring over HTTP picks exactly the continuation's tokens."""
    backend = http_backend(server_url)
    prefix = "Message: my card still has not come\nLabel:"
    whole, first, second = backend.continuation_logprobs([prefix, prefix, prefix + " card"],
                                                         [" card arrival", " card", " arrival"])
    assert whole is not None and whole < 0
    assert whole == pytest.approx(first + second, abs=0.05)


def test_a_teacher_batch_over_http_accounts_for_every_text(server_url):
    labels = [Label("card_arrival"), Label("transfer")]
    seeds = [{"text": "where is my new card", "label": "card_arrival"},
             {"text": "my card has not arrived yet", "label": "card_arrival"},
             {"text": "send money to my friend please", "label": "transfer"},
             {"text": "how do I transfer cash abroad", "label": "transfer"}]
    config = teacher_settings(backend="openai", model=SERVED_NAME, classes_per_batch=2, examples_per_class=4,
                              max_new_tokens=24, min_confidence=0.0)
    teacher = Teacher(http_backend(server_url), labels, seeds, [], config, "teacher-0", "Customer messages to a bank",
                      seed=random.Random(0).randint(0, 99))
    examples, stats = teacher.write_batch(None, 0)
    assert stats.generated == 8 and stats.prompt_tokens > 0 and stats.completion_tokens > 0
    assert stats.kept == len(examples) == stats.generated - sum(stats.dropped.values())
    assert all(e.candidate_probs and abs(sum(e.candidate_probs.values()) - 1) < 1e-6 for e in examples)


def test_the_real_server_chats_holds_replies_to_a_schema_and_guides_a_choice(server_url):
    """pgkd.serve gives the embedded base model Gemma's chat template: the probe finds chat, JSON-schema replies
    and guided choice, and keeps the completion format as the default for a model not named instruct."""
    caps = http_backend(server_url).capabilities
    assert (caps.chat, caps.json_schema, caps.guided_choice, caps.chat_default) == (True, True, True, False), caps


def test_a_chat_teacher_batch_over_http_with_structured_replies(server_url):
    labels = [Label("card_arrival", "card arrival"), Label("transfer")]
    seeds = [{"text": "where is my new card", "label": "card_arrival"},
             {"text": "my card has not arrived yet", "label": "card_arrival"},
             {"text": "send money to my friend please", "label": "transfer"},
             {"text": "how do I transfer cash abroad", "label": "transfer"}]
    config = teacher_settings(backend="openai", model=SERVED_NAME, prompt_format="chat", classes_per_batch=2,
                              examples_per_class=3, examples_per_request=3, max_new_tokens=24, min_confidence=0.0)
    teacher = Teacher(http_backend(server_url), labels, seeds, [], config, "teacher-0", "Customer messages to a bank")
    assert (teacher.format.prompt_format, teacher.structured) == ("chat", True)
    examples, stats = teacher.write_batch(None, 0)
    assert stats.failed_requests == 0 and stats.completion_tokens > 0
    assert stats.generated >= 6 and stats.kept == len(examples)  # a reply that broke its schema counts its 3
    assert stats.generated == stats.kept + sum(stats.dropped.values())
    assert all(e.candidate_probs and abs(sum(e.candidate_probs.values()) - 1) < 1e-6 for e in examples)
    scores = teacher.backend.choice_logprobs([[{"role": "user", "content": "Is a late card 'card arrival' or "
                                                "'transfer'? Reply with the label only."}]],
                                             [["card arrival", "transfer"]])
    assert set(scores[0]) == {"card arrival", "transfer"} and all(v < 0 for v in scores[0].values())
