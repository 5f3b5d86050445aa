"""The generation plan: a pure function from the newest validation report to what to write next.

Weak classes get more of the budget (sampled in proportion to (1 - F1)^2, so every class keeps some chance);
the classes they are confused with are named for contrast and their misclassified validation texts are quoted.
Without a report (or with `use_report` off) classes are visited round-robin.
"""
from __future__ import annotations

import random

from pgkd.bus.messages import EvalReport
from pgkd.teacher.prompts import ClassTask
from pgkd.teacher.settings import TeacherSettings

FLOOR_WEIGHT = 0.02  # a perfect class still gets picked now and then


def plan_batch(labels: list[str], report: EvalReport | None, batch: int, classes_per_batch: int,
               examples_per_class: int, max_hard_negatives: int, use_report: bool, hard_negatives: bool,
               rng: random.Random, *, steer_power: float, boundary_share: float, steer_share: float,
               steer_floor: float, steer_by: str) -> list[ClassTask]:
    """The classes of one batch and what to ask for each. Steered, steer_share of the batch's classes are drawn
    by weakness and the rest visited round-robin; a steered class's examples are split: boundary_share of them as
    boundary cases (its confusions named, its misclassified texts quoted), the rest as typical ones. The steering
    has no defaults here: the settings' (teacher/settings.py) are the only ones."""
    k = min(classes_per_batch, len(labels))
    if report is None or not use_report:
        chosen = round_robin(labels, batch, k)
        return [ClassTask(label, examples_per_class) for label in chosen]
    steered = round(k * steer_share)
    visited = round_robin(labels, batch, k - steered) if k - steered else []
    rest = [label for label in labels if label not in visited]
    chosen = visited + weakest_sample(rest, strengths(report, steer_by), steered, rng, steer_power, steer_floor)
    boundary = round(examples_per_class * boundary_share)
    tasks = [ClassTask(label, examples_per_class) for label in visited]
    for label in chosen[len(visited):]:
        if boundary:
            tasks.append(ClassTask(label, boundary, contrast=confused_with(report, label, 2),
                                   hard_negatives=pick_hard_negatives(report, label, max_hard_negatives)
                                   if hard_negatives else []))
        if examples_per_class - boundary:
            tasks.append(ClassTask(label, examples_per_class - boundary))
    return tasks


def plan_for(config: TeacherSettings, labels: list[str], report: EvalReport | None, batch: int,
             rng: random.Random) -> list[ClassTask]:
    """plan_batch with a teacher block's batch shape and steering settings (what both teachers call)."""
    c = config
    return plan_batch(labels, report, batch, c.classes_per_batch, c.examples_per_class, c.max_hard_negatives,
                      c.use_report, c.hard_negatives, rng, steer_power=c.steer_power, boundary_share=c.boundary_share,
                      steer_share=c.steer_share, steer_floor=c.steer_floor, steer_by=c.steer_by)


def strengths(report: EvalReport, steer_by: str) -> dict[str, float]:
    """How well the student does on each class: F1, or (steer_by "confidence") the mean probability it gives the
    true label of the class's steering texts, which varies less on a few texts than F1 does."""
    if steer_by == "confidence" and report.per_class_true_prob:
        return report.per_class_true_prob
    return report.per_class_f1


def round_robin(labels: list[str], batch: int, k: int) -> list[str]:
    start = (batch * k) % len(labels)
    return [labels[(start + i) % len(labels)] for i in range(k)]


def weakest_sample(labels: list[str], f1: dict[str, float], k: int, rng: random.Random,
                   power: float = 2.0, floor: float = FLOOR_WEIGHT) -> list[str]:
    """k distinct labels, drawn without replacement with weight (1 - F1)^power + floor (power 0: uniform)."""
    pool = list(labels)
    weights = [(1.0 - f1.get(label, 0.0)) ** power + floor for label in pool]
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
