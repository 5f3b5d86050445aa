"""When to stop: no improvement of min_delta in macro-F1 for `patience` scored versions."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EarlyStopping:
    patience: int
    min_delta: float
    best: float = float("-inf")  # highest score seen: what gets exported
    best_key: str | None = None
    anchor: float = float("-inf")  # last score that improved by min_delta: what patience counts from
    since_improvement: int = 0
    seen: int = 0

    def update(self, score: float, key: str) -> bool:
        """Record one scored version; True when it is the new best."""
        self.seen += 1
        if score > self.anchor + self.min_delta:
            self.anchor, self.since_improvement = score, 0
        else:
            self.since_improvement += 1
        if score > self.best:
            self.best, self.best_key = score, key
            return True
        return False

    @property
    def should_stop(self) -> bool:
        return self.since_improvement >= self.patience


class RunStopping:
    """Patience per student (a strong student must not end the run while a weaker one still learns);
    the run stops when every student has run out of patience. Also keeps the best version across students."""

    def __init__(self, patience: int, min_delta: float, students: list[str]):
        self.per_student = {name: EarlyStopping(patience, min_delta) for name in students}
        self.best, self.best_key, self.seen = float("-inf"), None, 0
        self.settings = (patience, min_delta)
        self.retired: set[str] = set()

    def update(self, student: str, score: float, key: str) -> bool:
        """Record one scored version; True when it is the best of the run so far."""
        self.seen += 1
        if student not in self.retired:
            self.per_student.setdefault(student, EarlyStopping(*self.settings)).update(score, key)
        if score > self.best:
            self.best, self.best_key = score, key
            return True
        return False

    def retire(self, student: str) -> None:
        """Stop waiting on a student that will publish no more versions (its best stays the run's best)."""
        self.per_student.pop(student, None)
        self.retired.add(student)

    def unretire(self, student: str) -> None:
        """Scaled up again: its patience counts afresh from its next version."""
        self.retired.discard(student)

    @property
    def should_stop(self) -> bool:
        return bool(self.per_student) and all(t.should_stop for t in self.per_student.values())
