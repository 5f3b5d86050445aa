"""Continual training of one student as examples stream in: each version warm-starts from the last and replays
all data so far. No Ray here."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pgkd.messages import Example

log = logging.getLogger(__name__)


@dataclass
class VersionResult:
    version: int
    path: Path
    examples_seen: int
    generated_seen: int
    train_seconds: float
    train_loss: float


def seed_everything(seed: int) -> None:
    """Same seed, same initial head: versions and runs are comparable."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class StudentTrainer:
    def __init__(self, student, config, checkpoint_dir: Path):
        self.student, self.config = student, config
        self.checkpoint_dir = Path(checkpoint_dir)
        self.examples: list[Example] = []
        self._ids: set[str] = set()
        self.new_since_version = 0
        self.version = -1

    def add(self, examples: list[Example]) -> int:
        """Stage examples for the next version; an example id seen before is ignored (redelivery)."""
        added = 0
        for example in examples:
            if example.id in self._ids or example.label not in self.student.labels:
                continue
            self._ids.add(example.id)
            self.examples.append(example)
            added += 1
        self.new_since_version += added
        return added

    def ready(self, flush: bool = False) -> bool:
        """The first version trains on whatever is there (the seeds); later ones wait for min_new_examples,
        unless flush (no more data is coming)."""
        if not self.examples or self.new_since_version == 0:
            return False
        return flush or self.version < 0 or self.new_since_version >= self.config.min_new_examples

    def train_version(self) -> VersionResult:
        started = time.monotonic()
        loss = self.student.fit(self.examples, self.config)
        self.version += 1
        path = self.student.save(self.checkpoint_dir / f"v{self.version:04d}")
        self.new_since_version = 0
        generated = sum(e.source != "seed" for e in self.examples)
        result = VersionResult(self.version, path, len(self.examples), generated, time.monotonic() - started, loss)
        log.info("version %d: %d examples (%d from the teacher), loss %.4f, %.1fs", result.version,
                 result.examples_seen, generated, loss, result.train_seconds)
        return result
