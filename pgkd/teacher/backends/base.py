"""What `teacher.backend` names, and the interface every LLM backend implements.

Each module of this package registers its kind in TEACHER_BACKENDS with its own settings block, beside its class
(`@TEACHER_BACKENDS.register("openai", OpenAISettings)`); the run's `teacher` block is their tagged union. A kind
(`TeacherKind`) says what a run must prepare for it and builds a replica's teacher; an LLM backend
(`TeacherBackend`) is a kind the LLM teacher (teacher/teacher.py) speaks to through prompts.

A prompt is either plain text (the `completion` format: the model continues it) or a list of chat messages
(the `chat` format: {"role", "content"} dicts, rendered by the model's chat template). Structured outputs are
asked for in the SamplingSpec; a backend that cannot hold a reply to a schema says so in `capabilities` and the
teacher falls back to parsing plain text.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Union

from pgkd.basics.kinds import KindFamily

TEACHER_BACKENDS = KindFamily("teacher backend", "backend", "vllm", ("pgkd.teacher.backends",))

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


class TeacherKind(ABC):
    """A registered kind of teacher: what the run prepares for it, and how a replica's teacher is made.

    What a kind needs is declared here and asked for by the driver, the actor and the report; nobody compares
    the backend's name."""

    needs_reservoir: ClassVar[bool] = False  # answers from the labelled train texts the seeds left over
    audits: ClassVar[bool] = False  # can be audited (`pgkd audit`); a run audits it where settings.audited

    @classmethod
    def text_encoder(cls, settings) -> str | None:
        """The sentence encoder whose vectors the teacher needs (the actor loads it); None: none."""
        return None

    @classmethod
    def report_note(cls, settings) -> str | None:
        """Said at the top of a run's report when its numbers do not measure a model; None: nothing to say."""
        return None

    @classmethod
    def probe(cls, settings, progress: Callable[[str], None] = print) -> Capabilities | None:
        """Try it once before a run starts anything (InputError when it cannot serve) and say what it can do;
        None: nothing to try before its replica starts (an engine in the replica's own process)."""
        return None

    @classmethod
    @abstractmethod
    def teacher(cls, settings, job):
        """The teacher of one replica (teacher/seam.py BatchTeacher), from its settings and a TeacherJob: the run's
        inputs, the replica, the KV-cache block size placement chose (teacher/factory.py)."""


class TeacherBackend(TeacherKind):
    """A model the LLM teacher prompts: it generates and scores; the prompts, parsing, filters and labelling are
    the teacher's. A failed prompt gives an empty Completion with failed=True, not an exception; an endpoint that
    keeps failing raises TeacherUnavailable."""

    audits = True
    model_name: str  # as examples name it ("teacher-0:<model_name>")
    capabilities: Capabilities  # known once started: the tokenizer in-process, a probe for an endpoint

    @classmethod
    @abstractmethod
    def from_settings(cls, settings, replica: int, kv_block_size: int | None = None) -> "TeacherBackend":
        """The backend its settings block describes; replicas sample with different seeds, and kv_block_size is
        the engine's KV-cache block size, which placement decides per device (None: the engine's default)."""

    @classmethod
    def teacher(cls, settings, job):
        """The LLM teacher over this backend. The job builds it (teacher/factory.py): teacher/teacher.py imports
        this module, so this module cannot import it."""
        return job.llm_teacher(cls.from_settings(settings, job.replica, job.kv_block_size), settings)

    @abstractmethod
    def generate(self, prompts: list[Prompt], spec: SamplingSpec) -> list[Completion]:
        """One Completion per prompt, in order."""

    @abstractmethod
    def choice_logprobs(self, prompts: list[Prompt], choices: list[list[str]]) -> list[dict[str, float] | None]:
        """For each prompt, the log-probability of each of its choices as the whole answer (None where scoring
        failed). A choice of a completion prompt is its continuation; of a chat prompt, the assistant's reply.
        A value that is not finite (an engine's NaN) is passed on as it is: the labeler drops that text as
        unscorable (teacher/labeler.py)."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine or the connections."""


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
