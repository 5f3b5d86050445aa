"""The interface every teacher backend implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class Completion:
    texts: list[str]  # n samples for one prompt
    prompt_tokens: int
    completion_tokens: int
    failed: bool = False  # the request was lost: no text was generated, and none is counted


@dataclass
class SamplingSpec:
    n: int = 1
    temperature: float = 0.9
    top_p: float = 0.95
    max_tokens: int = 40
    stop: tuple[str, ...] = ("\n",)
    seed: int | None = None


class TeacherBackend(Protocol):
    model_name: str

    def generate(self, prompts: list[str], spec: SamplingSpec) -> list[Completion]:
        """One Completion per prompt, in order. A failed prompt gives an empty Completion with failed=True, not
        an exception; an endpoint that keeps failing raises TeacherUnavailable."""

    def continuation_logprobs(self, prefixes: list[str], continuations: list[str]) -> list[float | None]:
        """Sum of log-probabilities of each continuation given its prefix (None where scoring failed)."""

    def close(self) -> None: ...


class TeacherUnavailable(RuntimeError):
    """The teacher cannot answer at all (too many requests in a row failed): the replica stops and says so."""
