"""Builds the teacher a settings block names, through the kind registered for its `backend` (teacher/backends/)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from pgkd.basics.dataset import Label
from pgkd.teacher.backends.base import TeacherBackend
from pgkd.teacher.config import teacher_kind
from pgkd.teacher.seam import BatchTeacher
from pgkd.teacher.settings import LLMTeacherSettings, TeacherSettings
from pgkd.teacher.teacher import Teacher


@dataclass
class TeacherJob:
    """What a replica's teacher is made from besides its settings: the run's inputs and the replica's place."""

    labels: list[Label]
    seeds: list[dict]
    protected_texts: list[str]
    name: str
    task: str
    replica: int = 0
    kv_block_size: int | None = None  # the engine's KV-cache block size, which placement decides per device
    reservoir: list[dict] = ()  # the labelled texts a kind that needs_reservoir answers from
    embed: Callable[[list[str]], np.ndarray] | None = None  # the text_encoder a kind asked for, loaded

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def seed(self, settings: TeacherSettings) -> int:
        """Replicas of one run sample differently."""
        return settings.seed * 1000 + self.replica

    def llm_teacher(self, backend: TeacherBackend, settings: LLMTeacherSettings) -> Teacher:
        """The LLM teacher over a started backend: prompts, parsing, filters, labelling (teacher/teacher.py)."""
        return Teacher(backend, self.labels, self.seeds, self.protected_texts, settings, self.name, self.task,
                       seed=self.seed(settings))


def make_teacher(settings: TeacherSettings, job: TeacherJob) -> BatchTeacher:
    """The teacher of one replica; it writes batches (`write_batch`), says when it has nothing left (`done`) and
    releases its engine (`close`)."""
    return teacher_kind(settings).teacher(settings, job)
