"""Custom Ray metrics (shown on the dashboard's metrics endpoint, about 10 s after they are recorded)."""
from __future__ import annotations

from functools import lru_cache

from ray.util.metrics import Counter, Gauge


@lru_cache(maxsize=None)
def _counter(name: str, description: str, tags: tuple[str, ...]) -> Counter:
    return Counter(name, description=description, tag_keys=tags)


@lru_cache(maxsize=None)
def _gauge(name: str, description: str, tags: tuple[str, ...]) -> Gauge:
    return Gauge(name, description=description, tag_keys=tags)


def _add(counter: Counter, amount: float, tags: dict[str, str]) -> None:
    """Ray counters refuse inc(0) with a ValueError: a batch that kept nothing must not crash its teacher."""
    if amount > 0:
        counter.inc(amount, tags)


def record_teacher_batch(actor: str, counts: dict[str, float]) -> None:
    tags = {"actor": actor}
    _add(_counter("pgkd_examples_generated", "texts the teacher wrote", ("actor",)), counts.get("generated", 0), tags)
    _add(_counter("pgkd_examples_kept", "texts that passed every filter", ("actor",)), counts.get("kept", 0), tags)
    busy = counts.get("busy_seconds") or 0
    if busy:
        _gauge("pgkd_teacher_tokens_per_second", "completion tokens per busy second, last batch", ("actor",)).set(
            counts.get("completion_tokens", 0) / busy, tags)
    wall = counts.get("wall_seconds") or 0
    if wall:
        _gauge("pgkd_teacher_engine_busy", "share of the wall time since the previous batch the engine worked",
               ("actor",)).set(min(1.0, busy / wall), tags)


def record_version(student: str, version: int, examples_seen: int) -> None:
    tags = {"student": student}
    _gauge("pgkd_student_version", "newest published version", ("student",)).set(version, tags)
    _gauge("pgkd_student_examples_seen", "examples in the newest version", ("student",)).set(examples_seen, tags)


def record_evaluation(student: str, macro_f1: float, best_for_student: float) -> None:
    tags = {"student": student}
    _counter("pgkd_evaluations", "checkpoints scored", ("student",)).inc(1, tags)
    _gauge("pgkd_macro_f1", "validation macro-F1 of the newest scored version", ("student",)).set(macro_f1, tags)
    _gauge("pgkd_best_macro_f1", "best validation macro-F1 so far", ("student",)).set(best_for_student, tags)


def record_queue(queue: str, depth: int) -> None:
    _gauge("pgkd_queue_depth", "bus entries not yet acked by a consumer group", ("queue",)).set(depth, {"queue": queue})
