"""Typed messages on the Redis bus. Only their JSON travels; nothing is pickled."""
from __future__ import annotations

import time
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Example(Message):
    """One labelled text with where it came from."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:16])
    text: str
    label: str
    source: Literal["seed", "generated", "pool", "augmented"]
    soft_label: dict[str, float] | None = None  # teacher probabilities for the KD loss (intended + confusions)
    candidate_probs: dict[str, float] | None = None  # the teacher's calibrated scores over every candidate scored
    teacher: str | None = None  # actor and model that wrote it
    report_version: str | None = None  # the validation report that steered it
    intended_label: str | None = None  # before relabelling


SEEDS_PRODUCER = "seeds"  # the producer of the run's one seed batch; every other producer is a teacher replica


class ExampleBatch(Message):
    producer: str
    batch: int
    examples: list[Example]
    created: float = Field(default_factory=time.time)


class Checkpoint(Message):
    student: str
    version: int
    path: str
    examples_seen: int
    generated_seen: int
    train_seconds: float
    train_loss: float | None = None
    epochs: int | None = None  # fewer than configured when validation loss stopped training early
    validation_loss: float | None = None
    created: float = Field(default_factory=time.time)

    @property
    def key(self) -> str:  # the same as the EvalReport of this version
        return f"{self.student}@v{self.version}"


class HardNegative(Message):
    text: str
    label: str  # true label
    predicted: str
    confidence: float


class EvalReport(Message):
    student: str
    version: int
    examples_seen: int
    generated_seen: int
    teacher_generated: int  # run-wide count when scored, for the learning curve
    accuracy: float
    macro_f1: float
    per_class_f1: dict[str, float]
    per_class_true_prob: dict[str, float] = Field(default_factory=dict)  # mean probability of the true label
    confusion_pairs: list[tuple[str, str, int]]  # (true, predicted, count), most frequent first
    hard_negatives: list[HardNegative]
    eval_seconds: float
    created: float = Field(default_factory=time.time)

    @property
    def key(self) -> str:
        return f"{self.student}@v{self.version}"


class ChoiceMade(Message):
    """The run's exported student changed (evaluator/judge.py): which version, scored how on the deciding texts,
    and when. A restarted evaluator may say the same choice again; readers take the first of each."""

    key: str
    selection_macro_f1: float
    created: float = Field(default_factory=time.time)


class SelectionScore(Message):
    """A version's score on the selection texts (validation held out from steering): what picks the best student.
    Its predictions let the evaluator compare two versions on the same texts (paired)."""

    student: str
    version: int
    macro_f1: float
    accuracy: float
    predictions: list[str]
    # on the steering texts too: the final choice may weigh all of validation (loop.selection_texts); empty in
    # messages from before they were published
    steering_predictions: list[str] = Field(default_factory=list)
    created: float = Field(default_factory=time.time)

    @property
    def key(self) -> str:
        return f"{self.student}@v{self.version}"


class PoolHint(Message):
    """A pool text a student is unsure of, offered to the teacher to label (active learning)."""

    id: str  # the text's stable id (basics.pool_files.text_id)
    text: str  # carried along, so no teacher holds the pool
    uncertainty: float  # 1 - (top-1 minus top-2 probability): higher is less sure
    student: str
    version: int
    top_labels: list[str]  # the student's best guesses, most likely first: the teacher's candidates


class ScaleRequest(Message):
    """`pgkd scale`: the wanted number of teacher replicas and of replicas per student config (by name)."""

    teachers: int | None = Field(None, ge=0)
    students: dict[str, int] = Field(default_factory=dict)  # student config name -> replicas
    created: float = Field(default_factory=time.time)


class Stop(Message):
    reason: Literal["patience", "max_versions", "time_budget", "max_generated", "user", "teacher_done", "error"]
    detail: str = ""
    created: float = Field(default_factory=time.time)


class TeacherAudit(Message):
    """How well the teacher labelled steering validation texts of known label before the run trusted it, and
    what the run decided from that (teacher/audit.py). Written once per run; every replica follows it."""

    texts: int
    candidates: int  # labels chosen among per text: the gold one and random others, as the teacher's checks do
    accuracy: float
    macro_f1: float
    ece: float
    target_precision: float
    threshold: float | None  # lowest confidence whose labels reach the target precision (None: none reaches it)
    precision_at_threshold: float | None
    kept_share: float
    best_threshold: float | None = None  # where the target is out of reach: the most precise threshold
    best_precision: float | None = None
    label_thresholds: dict[str, dict] = Field(default_factory=dict)  # label given -> threshold, precision, labels
    per_class_f1: dict[str, float] = Field(default_factory=dict)
    reliability: list[dict] = Field(default_factory=list)
    unscored: int = 0
    seconds: float = 0.0
    budget_s: float | None = None  # what it could cost (teacher.audit_budget_s); it stops labelling within it
    offered: int | None = None  # audit texts it was given; texts + unscored of them were labelled in the budget
    labels_total: int | None = None
    labels_covered: int | None = None  # labels among the texts it labelled
    student: str | None = None  # the seeds-only student compared on the same texts and candidates
    student_accuracy: float | None = None
    student_macro_f1: float | None = None
    min_confidence: float | None = None  # what the run uses, and why
    pool_labelling: bool = True
    soft_labels: bool = True
    kd_alpha: float = 0.0  # the KD weight of students that set none: from the calibration error
    prompt_format: str | None = None  # how the teacher was spoken to: completion | chat
    structured: bool | None = None  # whether its generation replies were held to a JSON schema
    decisions: list[str] = Field(default_factory=list)
