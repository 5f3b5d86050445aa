"""The evaluator's blocks: how it scores (evaluator) and when the run stops and which version it exports (loop)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from pgkd.basics.settings import Settings


class EvaluatorConfig(Settings):
    threads: int = Field(1, ge=1)
    batch_size: int = Field(64, ge=1)
    max_hard_negatives: int = Field(50, ge=0)


class LoopConfig(Settings):
    mode: Literal["async", "rounds"] = Field(
        "async", description="async: the teacher writes while students train and the evaluator scores (pgkd); "
        "rounds: they take turns, as in the PGKD paper: a batch, a version trained on it, its score, the next "
        "batch steered by it (bench/time_to_target.py compares them)")
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.005, ge=0)
    max_versions: int = Field(20, ge=1)
    time_budget_s: float = Field(1800, gt=0)
    max_generated: int | None = Field(None, ge=1)
    poll_interval_s: float = Field(0.5, gt=0)
    selection_z: float = Field(0.75, ge=0, description="a later version replaces the seeds-only one only when it "
                               "beats it by more than this many standard errors of the paired difference (bootstrap)")
    # bench/selection_rules.py measured these (bench/README.md, issue 27): the defaults halve the gains the rule
    # before them missed, with no more exports below seeds-only
    selection_texts: Literal["validation", "held_out"] = Field(
        "validation", description="the texts that choose the exported student: all of validation (steering and "
        "held-out halves; the teacher reads only per-class scores of the steering half) or only the held-out half")
    selection_challengers: Literal["newest", "best"] = Field(
        "newest", description="which later versions may replace seeds-only: each student's newest (fixed before "
        "any score is read: no best-of-many bias) or any that scores above it, best first")
