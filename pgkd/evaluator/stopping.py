"""When to stop: every student went `patience` scored versions without gaining `min_delta` macro-F1, or the run
scored `max_versions`. Which version is best is not decided here (pgkd/evaluator/selection.py decides that)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Patience:
    """One student's patience: versions since its score last rose by min_delta over the score it counts from."""

    patience: int
    min_delta: float
    anchor: float = float("-inf")  # the last score that improved by min_delta
    since_improvement: int = 0

    def update(self, score: float) -> None:
        if score > self.anchor + self.min_delta:
            self.anchor, self.since_improvement = score, 0
        else:
            self.since_improvement += 1

    @property
    def exhausted(self) -> bool:
        return self.since_improvement >= self.patience


class RunStopping:
    """Patience per student (a strong student must not end the run while a weaker one still learns); the run
    stops when every student has run out of patience, or after max_versions scored versions."""

    def __init__(self, patience: int, min_delta: float, max_versions: int, students: list[str]):
        self.settings = (patience, min_delta)
        self.max_versions = max_versions
        self.per_student = {name: Patience(patience, min_delta) for name in students}
        self.retired: set[str] = set()
        self.seen = 0

    def update(self, student: str, score: float) -> None:
        """Record one scored version (a retired student's late version counts toward max_versions only)."""
        self.seen += 1
        if student not in self.retired:
            self.per_student.setdefault(student, Patience(*self.settings)).update(score)

    def retire(self, student: str) -> None:
        """Stop waiting on a student that will publish no more versions."""
        self.per_student.pop(student, None)
        self.retired.add(student)

    def unretire(self, student: str) -> None:
        """Scaled up again: its patience counts afresh from its next version."""
        self.retired.discard(student)

    def reason(self) -> str | None:
        """'patience' or 'max_versions' when the run should stop, else None."""
        if self.per_student and all(p.exhausted for p in self.per_student.values()):
            return "patience"
        if self.seen >= self.max_versions:
            return "max_versions"
        return None
