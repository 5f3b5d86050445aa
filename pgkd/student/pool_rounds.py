"""When the pool is scored and which shards a round takes: Ray-free, so the rotation is plainly testable.

A round starts when the best student is a checkpoint the pool has not been scored with, or when the teachers
took everything the last round offered. It takes the next `per_round` shards after the cursor (all of them
when the pool has no more), so a pool of a million texts is covered over several rounds and a small one is
scored whole each time. The cursor lives on the bus: a restarted scorer or a resumed run goes on from it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field


def next_shards(total: int, cursor: int, per_round: int) -> tuple[list[int], int]:
    """(shard indexes for this round, the cursor after it)."""
    if total <= per_round:
        return list(range(total)), 0
    return [(cursor + i) % total for i in range(per_round)], (cursor + per_round) % total


def round_due(best_key: str | None, scored_with: str | None, queued: int, exhausted: bool = False) -> str | None:
    """Why a round should start now (None: it should not). `exhausted`: rounds with this checkpoint covered every
    shard and offered nothing (every text labelled or left out): only a new best student can find more."""
    if best_key is None:
        return None
    if best_key != scored_with:
        return f"new best student {best_key}"
    if queued == 0 and not exhausted:
        return "the teachers took every offered text"
    return None


def exhausted(dry_rounds: int, per_round: int, total: int) -> bool:
    """Rounds in a row that offered nothing have covered all `total` shards."""
    return dry_rounds > 0 and dry_rounds * per_round >= total


@dataclass
class RoundTally:
    """What one round saw, batch by batch (the summary rows the scoring actors send)."""

    scored: int = 0
    bad: int = 0
    skipped: int = 0  # seed, validation, test and already-labelled texts, left out
    problems: list[str] = field(default_factory=list)  # "file:line: why", as many as the batches named

    def add_summary(self, scored: int, bad: int, skipped: int, problems_json: str) -> list[str]:
        """Count one batch's summary; returns its newly named bad rows (for the log)."""
        self.scored, self.bad, self.skipped = self.scored + scored, self.bad + bad, self.skipped + skipped
        named = json.loads(problems_json or "[]")
        self.problems += named
        return named
