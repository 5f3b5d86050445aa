"""Continual training of one student as examples stream in: each version warm-starts from the last and trains
on the new examples plus a replay of the old ones (all of them up to `replay`, else that many drawn per class),
so a version costs about its new data however long the run. No Ray here."""
from __future__ import annotations

import logging
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from pgkd.bus.messages import Example
from pgkd.basics import storage
from pgkd.student.commit import commit_folder

log = logging.getLogger(__name__)


@dataclass
class VersionResult:
    version: int
    path: str  # where every reader loads it: the local folder, or its copy in run storage
    examples_seen: int
    generated_seen: int
    train_seconds: float
    train_loss: float
    epochs: int
    validation_loss: float | None


def checkpoint_places(checkpoint_dir: str, run_id: str, name: str) -> tuple[Path, str | None]:
    """(local folder a student commits its versions to, run storage they are published to or None). With run
    storage by URI the local folder is this node's scratch."""
    if storage.is_uri(checkpoint_dir):
        return storage.scratch_root() / "runs" / run_id / "checkpoints" / name, storage.join(checkpoint_dir, name)
    return Path(checkpoint_dir) / name, None


def seed_everything(seed: int) -> None:
    """Same seed, same initial head: versions and runs are comparable."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class ValidationStop:
    """on_epoch hook: every `every` epochs, the loss on validation texts; True (stop) after `patience` checks
    without a new low. Without validation rows it never stops early."""

    def __init__(self, student, validation: list[dict], every: int, patience: int):
        self.student, self.every, self.patience = student, every, patience
        self.texts = [row["text"] for row in validation]
        index = {label: i for i, label in enumerate(student.labels)}
        self.gold = [index[row["label"]] for row in validation if row["label"] in index]
        self.best, self.since_best, self.stopped_at = float("inf"), 0, None

    def loss(self) -> float:
        import numpy as np

        probs = self.student.predict_proba(self.texts)
        return float(-np.mean(np.log(np.clip(probs[np.arange(len(self.gold)), self.gold], 1e-9, 1.0))))

    def __call__(self, epoch: int, train_loss: float) -> bool:
        if not self.texts or (epoch + 1) % self.every:
            return False
        loss = self.loss()
        if loss < self.best - 1e-4:
            self.best, self.since_best = loss, 0
        else:
            self.since_best += 1
        if self.since_best >= self.patience:
            self.stopped_at = epoch + 1
            return True
        return False


class StudentTrainer:
    def __init__(self, student, config, checkpoint_dir: Path, validation: list[dict] | None = None,
                 store: str | None = None):
        self.student, self.config = student, config
        self.validation = validation or []
        self.checkpoint_dir = Path(checkpoint_dir)
        self.store = store  # run storage (a URI): each version is committed locally, then published there
        self.examples: list[Example] = []
        self._ids: set[str] = set()
        self.new_since_version = 0
        self.trained_upto = 0  # self.examples[:trained_upto] were in some earlier version
        self.distrusted = 0  # teacher examples the last version left out (label_filter)
        self.version = -1
        self.fitted = False  # the student's weights come from some version (else label_filter would judge noise)

    def resume(self, student, version: int, trained: list[Example], seen: int | None = None) -> None:
        """Continue after a restart: the next version is `version` + 1, trained on `trained` (every example the
        versions up to `version` saw). `student` holds the weights of `version`, or, where that checkpoint was
        damaged, of an older one that had seen the first `seen` of them (the rest train again as new), or None:
        none loaded, the fresh student trains on all of them."""
        self.version = version
        self.add(trained)
        if student is not None:
            self.student, self.fitted = student, True
        self.trained_upto = len(self.examples) if seen is None else min(seen, len(self.examples))
        self.new_since_version = len(self.examples) - self.trained_upto

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

    def training_set(self) -> list[Example]:
        """The new examples and a replay of the old: all of them, or `replay` of them when more, drawn per class
        (replay_by: class) so the set's class mix is that of every example so far, or at random (replay_by:
        random). A steered batch is skewed by design; a random replay let it push out the classes it lacked."""
        old, new = self.examples[:self.trained_upto], self.examples[self.trained_upto:]
        limit = self.config.replay
        if limit is not None and len(old) > limit:
            draw = random.Random(f"{self.config.seed}:{self.version + 1}")
            old = (replay_per_class(old, new, limit, draw) if self.config.replay_by == "class"
                   else draw.sample(old, limit))
        return self.trusted(old + new)

    def trusted(self, examples: list[Example]) -> list[Example]:
        """Teacher examples whose label the current version gives at least `label_filter` probability (seeds
        always): a wrong label the student is sure of is left out of this version; it may come back in a later
        one. 0 keeps everything."""
        floor = self.config.label_filter
        if not floor or not self.fitted:
            return examples
        taught = [i for i, e in enumerate(examples) if e.source != "seed"]
        if not taught:
            return examples
        index = {label: j for j, label in enumerate(self.student.labels)}
        probs = self.student.predict_proba([examples[i].text for i in taught])
        distrusted = {i for row, i in enumerate(taught) if probs[row, index[examples[i].label]] < floor}
        self.distrusted = len(distrusted)
        return [e for i, e in enumerate(examples) if i not in distrusted]

    def train_version(self) -> VersionResult:
        started = time.monotonic()
        stopper = ValidationStop(self.student, self.validation, self.config.early_stop_every,
                                 self.config.early_stop_patience)
        loss = self.student.fit(self.training_set(), self.config, on_epoch=stopper)
        # committed whole (commit.py): a crash mid-save leaves no vNNNN, and this trainer's state as it was
        path = commit_folder(self.student.save, self.checkpoint_dir / f"v{self.version + 1:04d}")
        if self.store:  # manifest last: readers on other nodes trust the version once it is whole
            path = storage.upload_folder(path, storage.join(self.store, path.name))
        self.version, self.fitted = self.version + 1, True
        self.trained_upto = len(self.examples)
        self.new_since_version = 0
        generated = sum(e.source != "seed" for e in self.examples)
        epochs = stopper.stopped_at or self.config.epochs
        best = stopper.best if stopper.best < float("inf") else None
        result = VersionResult(self.version, str(path), len(self.examples), generated, time.monotonic() - started, loss,
                               epochs, best)
        log.info("version %d: %d examples (%d from the teacher), %d epochs, loss %.4f, validation loss %s, %.1fs",
                 result.version, result.examples_seen, generated, epochs, loss,
                 "-" if best is None else f"{best:.4f}", result.train_seconds)
        return result


def replay_per_class(old: list[Example], new: list[Example], limit: int, draw: random.Random) -> list[Example]:
    """`limit` old examples chosen so that old + new has, per class, about the share that class has among all
    examples (old and new): a class the new batch lacks keeps its place; one it floods replays less. Whatever a
    class cannot use (too few old ones) goes to the others in proportion, so the replay is `limit` long."""
    by_class: dict[str, list[Example]] = defaultdict(list)
    for example in old:
        by_class[example.label].append(example)
    new_count = Counter(e.label for e in new)
    total, size = len(old) + len(new), limit + len(new)
    want = {label: max(0.0, size * (len(rows) + new_count[label]) / total - new_count[label])
            for label, rows in by_class.items()}
    quota = fill_quota(want, {label: len(rows) for label, rows in by_class.items()}, limit)
    picked = [e for label, rows in by_class.items() for e in draw.sample(rows, quota[label])]
    return sorted(picked, key=lambda e: e.id)  # draw order must not depend on dict order; ids are stable


def fill_quota(want: dict[str, float], have: dict[str, int], limit: int) -> dict[str, int]:
    """Integer quotas close to `want`, each within `have`, summing to min(limit, sum(have)). The wants can ask for
    more than that (a class the new batch floods wants nothing, so the others' shares outgrow the replay): then
    they are scaled down alike."""
    target = min(limit, sum(have.values()))

    def floors(scale: float) -> dict[str, int]:
        return {label: min(have[label], int(w * scale)) for label, w in want.items()}

    scale = 1.0
    if sum(floors(1.0).values()) > target:  # the largest scale whose floors fit (bisection)
        low, high = 0.0, 1.0
        for _ in range(50):
            scale = (low + high) / 2
            low, high = (scale, high) if sum(floors(scale).values()) <= target else (low, scale)
        scale = low
    quota = floors(scale)
    left = target - sum(quota.values())
    while left > 0:  # rounding and caps: the rest to the classes furthest below what they want, with room
        open_ = sorted((label for label in quota if quota[label] < have[label]),
                       key=lambda label: (quota[label] - want[label] * scale, label))
        for label in open_[:left]:
            quota[label] += 1
        left = target - sum(quota.values())
    return quota
