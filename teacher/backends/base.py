"""The interface every teacher backend implements, and the registry that picks one by name."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol


@dataclass
class Completion:
    texts: list[str]  # n samples for one prompt
    prompt_tokens: int
    completion_tokens: int


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
        """One Completion per prompt, in order. A failed prompt gives an empty Completion, not an exception."""

    def continuation_logprobs(self, prefixes: list[str], continuations: list[str]) -> list[float | None]:
        """Sum of log-probabilities of each continuation given its prefix (None where scoring failed)."""

    def close(self) -> None: ...


BACKENDS: dict[str, Callable[..., TeacherBackend]] = {}


def register_backend(name: str):
    def wrap(factory):
        BACKENDS[name] = factory
        return factory

    return wrap


def make_backend(name: str, **kwargs) -> TeacherBackend:
    from teacher.backends import openai_http, vllm_engine  # noqa: F401  (register "openai" and "vllm")

    if name not in BACKENDS:
        raise ValueError(f"unknown teacher backend '{name}' (known: {sorted(BACKENDS)})")
    return BACKENDS[name](**kwargs)


def backend_options(config, replica: int) -> dict:
    """The keyword arguments a TeacherConfig gives its backend (replicas sample with different seeds)."""
    if config.backend == "openai":
        return {"model": config.model, **config.http.model_dump()}
    return {"model": config.model, "dtype": config.dtype, "max_model_len": config.max_model_len,
            "kv_cache_gib": config.kv_cache_gib, "enforce_eager": config.enforce_eager, "seed": config.seed + replica}
