"""The generation plan: a pure function from the newest validation report to what to write next.

Weak classes get more of the budget (sampled in proportion to (1 - F1)^2, so every class keeps some chance);
the classes they are confused with are named for contrast and their misclassified validation texts are quoted.
Without a report (or with `use_report` off) classes are visited round-robin.
"""
from __future__ import annotations

import random

from bus.messages import EvalReport
from teacher.prompts import ClassTask

FLOOR_WEIGHT = 0.02  # a perfect class still gets picked now and then


def plan_batch(labels: list[str], report: EvalReport | None, batch: int, classes_per_batch: int,
               examples_per_class: int, max_hard_negatives: int, use_report: bool, hard_negatives: bool,
               rng: random.Random) -> list[ClassTask]:
    k = min(classes_per_batch, len(labels))
    if report is None or not use_report:
        chosen = round_robin(labels, batch, k)
        return [ClassTask(label, examples_per_class) for label in chosen]
    chosen = weakest_sample(labels, report.per_class_f1, k, rng)
    return [
        ClassTask(label, examples_per_class,
                  hard_negatives=pick_hard_negatives(report, label, max_hard_negatives) if hard_negatives else [],
                  contrast=confused_with(report, label, 2))
        for label in chosen
    ]


def round_robin(labels: list[str], batch: int, k: int) -> list[str]:
    start = (batch * k) % len(labels)
    return [labels[(start + i) % len(labels)] for i in range(k)]


def weakest_sample(labels: list[str], f1: dict[str, float], k: int, rng: random.Random) -> list[str]:
    """k distinct labels, drawn without replacement with weight (1 - F1)^2 + floor."""
    pool = list(labels)
    weights = [(1.0 - f1.get(label, 0.0)) ** 2 + FLOOR_WEIGHT for label in pool]
    chosen = []
    for _ in range(k):
        pick = rng.choices(range(len(pool)), weights=weights)[0]
        chosen.append(pool.pop(pick))
        weights.pop(pick)
    return chosen


def pick_hard_negatives(report: EvalReport, label: str, limit: int):
    """Validation texts of this class the student got wrong, most confidently wrong first."""
    mine = [h for h in report.hard_negatives if h.label == label]
    return sorted(mine, key=lambda h: -h.confidence)[:limit]


def confused_with(report: EvalReport, label: str, limit: int) -> list[str]:
    """Labels this class is most often mistaken for, or mistaken as, most frequent first."""
    others: dict[str, int] = {}
    for true, predicted, count in report.confusion_pairs:
        other = predicted if true == label else true if predicted == label else None
        if other and other != label:
            others[other] = others.get(other, 0) + count
    return [o for o, _ in sorted(others.items(), key=lambda kv: -kv[1])[:limit]]


def is_newer(report: EvalReport, used: dict[str, int]) -> bool:
    """A report from an older version of a student than one already used is stale."""
    return report.version >= used.get(report.student, -1)
