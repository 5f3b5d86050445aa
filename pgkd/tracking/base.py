"""What a tracking backend does, and nothing of how: the contract every backend file (mlflow_backend.py) meets.

Every method may raise: the caller (outbox.py) retries it and gives tracking up when it keeps failing. Every method
is idempotent for the same arguments, so a retried call, or a resumed run sending its history again, doubles
nothing: a metric point is (key, step, timestamp) from the message it comes from, the run is found by the pgkd
run id before one is created, params already there are not sent again.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

BACKENDS = {"mlflow": "pgkd.tracking.mlflow_backend:MLflowTracker"}  # imported only when chosen: mlflow is heavy


@dataclass(frozen=True)
class Point:
    key: str
    value: float
    step: int
    timestamp_ms: int


class Tracker(ABC):
    run_id: str | None = None  # the tracking server's id of the run, once open() succeeded
    started_ms: int = 0  # when the tracking run began (its first session): teacher curves count seconds from it

    @abstractmethod
    def open(self, pgkd_run_id: str, tags: dict[str, str]) -> None:
        """Find the run tagged with this pgkd run id (a resumed run continues it) or create it."""

    @abstractmethod
    def log_params(self, params: dict[str, str]) -> list[str]:
        """Send the params the run lacks; returns the names whose value differs from the one already there."""

    @abstractmethod
    def log_points(self, points: list[Point]) -> None:
        """Metric points; the same point sent twice is kept once."""

    @abstractmethod
    def set_tag(self, key: str, value: str) -> None:
        """A tag on the run, replaced when set again."""

    @abstractmethod
    def log_files(self, paths: list[Path], folder: str | None = None) -> None:
        """Artifacts, replaced when sent again."""

    @abstractmethod
    def log_json(self, value: dict, name: str) -> None:
        """A JSON artifact (the audit's reliability table)."""

    @abstractmethod
    def log_student(self, folder: Path, example: list[str], register_as: str | None) -> str:
        """The exported student as a servable model; returns its URI."""

    @abstractmethod
    def close(self, ok: bool) -> None:
        """Mark the run finished (or failed)."""

    @abstractmethod
    def where(self) -> dict:
        """Where to look: backend, store URI (credentials redacted), experiment, run id, model URI."""


def make_tracker(config, runs_dir: Path) -> Tracker:
    module, _, name = BACKENDS[config.backend].partition(":")
    return getattr(import_module(module), name)(config, runs_dir)
