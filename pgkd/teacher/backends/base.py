"""The interface every teacher backend implements.

A prompt is either plain text (the `completion` format: the model continues it) or a list of chat messages
(the `chat` format: {"role", "content"} dicts, rendered by the model's chat template). Structured outputs are
asked for in the SamplingSpec; a backend that cannot hold a reply to a schema says so in `capabilities` and the
teacher falls back to parsing plain text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Union

Message = dict[str, str]
Prompt = Union[str, list[Message]]


@dataclass
class Completion:
    texts: list[str]  # n samples for one prompt
    prompt_tokens: int
    completion_tokens: int
    failed: bool = False  # the request was lost: no text was generated, and none is counted
    structured: bool = False  # the reply was held to the spec's json_schema (False: free text, parse with care)


@dataclass
class SamplingSpec:
    n: int = 1
    temperature: float = 0.9
    top_p: float = 0.95
    max_tokens: int = 40
    stop: tuple[str, ...] = ("\n",)
    seed: int | None = None
    json_schema: dict | None = None  # hold each reply to this JSON schema where the backend can


@dataclass
class Capabilities:
    """What a backend can do, known once it has started (a probe for an endpoint, the tokenizer in-process)."""

    chat: bool = False  # takes message lists (the model has a chat template / the endpoint has /chat/completions)
    json_schema: bool = False  # can hold a reply to a JSON schema
    chat_default: bool = False  # chat is the better format for this model (an instruct model with a template)
    guided_choice: bool = False  # chat labelling can be held to the candidate labels (vLLM's structured outputs)
    notes: list[str] = field(default_factory=list)  # why a capability is missing, for the run's log and report


class TeacherBackend(Protocol):
    model_name: str
    capabilities: Capabilities

    def generate(self, prompts: list[Prompt], spec: SamplingSpec) -> list[Completion]:
        """One Completion per prompt, in order. A failed prompt gives an empty Completion with failed=True, not
        an exception; an endpoint that keeps failing raises TeacherUnavailable."""

    def choice_logprobs(self, prompts: list[Prompt], choices: list[list[str]]) -> list[dict[str, float] | None]:
        """For each prompt, the log-probability of each of its choices as the whole answer (None where scoring
        failed). A choice of a completion prompt is its continuation; of a chat prompt, the assistant's reply."""

    def close(self) -> None: ...


INSTRUCT_MARKERS = ("instruct", "-it", "_it", "chat")  # how instruction-tuned checkpoints are named


def looks_instruct(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in INSTRUCT_MARKERS)


class TeacherUnavailable(RuntimeError):
    """The teacher cannot answer at all (too many requests in a row failed): the replica stops and says so."""


def scored_by_continuation(backend, prompts: list[str], choices: list[list[str]]) -> list[dict[str, float] | None]:
    """choice_logprobs for text prompts from a backend's continuation_logprobs, in one call for all pairs."""
    prefixes, continuations, owners = [], [], []
    for index, (prompt, options) in enumerate(zip(prompts, choices)):
        for option in options:
            prefixes.append(prompt)
            continuations.append(option)
            owners.append((index, option))
    results: list[dict[str, float] | None] = [{} for _ in prompts]
    for (index, option), logprob in zip(owners, backend.continuation_logprobs(prefixes, continuations)):
        if logprob is None or results[index] is None:
            results[index] = None
        else:
            results[index][option] = logprob
    return results
