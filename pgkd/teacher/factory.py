"""Builds the teacher a config names: the LLM teacher over a backend, or the simulated one (benchmarks only)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from pgkd.teacher.config import SIMULATED, TeacherConfig
from pgkd.basics.dataset import Label
from pgkd.teacher.backends.registry import backend_options, make_backend
from pgkd.teacher.simulated import SimulatedTeacher
from pgkd.teacher.teacher import Teacher


def make_teacher(config: TeacherConfig, labels: list[Label], seeds: list[dict], protected_texts: list[str],
                 name: str, task: str, replica: int, kv_block_size: int | None = None,
                 reservoir: list[dict] = (), embed: Callable[[list[str]], np.ndarray] | None = None):
    """The teacher of one replica; it writes batches (`write_batch`), says when it has nothing left (`done`) and
    releases its engine (`close`)."""
    seed = config.seed * 1000 + replica
    if config.backend == SIMULATED:
        return SimulatedTeacher(list(reservoir), embed, [label.name for label in labels], config, name, seed)
    backend = make_backend(config.backend, **backend_options(config, replica, kv_block_size))
    return Teacher(backend, labels, seeds, protected_texts, config, name, task, seed=seed)
