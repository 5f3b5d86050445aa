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
