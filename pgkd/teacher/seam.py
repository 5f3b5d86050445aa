"""The teacher's seam: what a replica's actor drives, whichever kind writes the batches (the LLM teacher over a
backend, teacher/teacher.py, or the simulated one, teacher/backends/simulated.py), and what a batch reports."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field

from pgkd.bus.messages import EvalReport, Example, TeacherAudit
from pgkd.teacher.audit import LabelPolicy


@dataclass
class BatchStats:
    generated: int = 0
    kept: int = 0  # examples the batch publishes: generated texts that passed the filters and labelled pool texts
    relabelled: int = 0
    dropped: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    busy_seconds: float = 0.0
    generate_seconds: float = 0.0
    label_seconds: float = 0.0
    augmented: int = 0  # of `generated`, paraphrases of seeds
    pool_offered: int = 0  # pool texts claimed for labelling
    pool_labelled: int = 0  # of those, labelled confidently enough to keep
    exhausted: int = 0  # examples asked of a simulated teacher whose reservoir of that class was spent
    failed_requests: int = 0  # lost requests: nothing was generated, so they are not in `generated`

    def as_counts(self) -> dict[str, float]:
        counts = {"generated": self.generated, "kept": self.kept, "relabelled": self.relabelled,
                  "augmented": self.augmented, "pool_offered": self.pool_offered, "pool_labelled": self.pool_labelled,
                  "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                  "busy_seconds": round(self.busy_seconds, 3), "generate_seconds": round(self.generate_seconds, 3),
                  "label_seconds": round(self.label_seconds, 3), "failed_requests": self.failed_requests}
        counts.update({f"dropped_{reason}": n for reason, n in self.dropped.items()})
        if self.exhausted:
            counts["exhausted"] = self.exhausted
        return counts


@dataclass
class PoolText:
    """An unlabelled text to label, with the student's best guesses as candidates."""

    text: str
    guesses: list[str]


class BatchTeacher(ABC):
    """A replica's teacher: it writes batches (`write_batch`), says when it has nothing left (`done`), follows the
    run's label policy (`follow`) and releases its engine (`close`)."""

    name: str
    label_names: list[str]
    policy: LabelPolicy  # from its settings until the run's audit decides (teacher/audit.py)

    @property
    @abstractmethod
    def model_name(self) -> str:
        """What wrote the examples, for the log and the examples' `teacher` field."""

    @property
    def done(self) -> bool:
        """Nothing more to write. A model can always write more: the budget (max_batches) ends it."""
        return False

    @property
    def writes_unprompted(self) -> bool:
        """Whether a batch writes anything without pool texts to label (generation or rewording is on). One that
        does not waits for pool texts instead of drawing empty batches."""
        return True

    @abstractmethod
    def write_batch(self, report: EvalReport | None, batch: int | None = None,
                    pool: list[PoolText] = ()) -> tuple[list[Example], BatchStats]:
        """One batch of labelled examples, steered by the report (None: none yet); pool texts first. `batch` is a
        run-wide number (replicas draw it from one counter): it picks the plan's round-robin slice and seed."""

    def describe(self) -> list[str]:
        """How it is spoken to, for the replica's log at start."""
        return []

    def notes(self) -> list[str]:
        """What it could not do as configured, said once at start (and kept in the audit)."""
        return []

    def audit(self, rows: list[dict], budget_s: float | None = None) -> TeacherAudit:
        """Label texts of known label as its own checks would, in order, stopping before budget_s is spent; only
        a kind that audits is asked (TeacherKind.audits)."""
        raise NotImplementedError(f"{type(self).__name__} has nothing to audit")

    def follow(self, policy: LabelPolicy) -> None:
        """Use the run's decision from the next batch on."""
        self.policy = policy

    def close(self) -> None:
        """Release its engine or connections."""
