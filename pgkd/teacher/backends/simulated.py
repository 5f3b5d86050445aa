"""A simulated teacher of known quality: a measuring instrument for benchmarks, never a teacher.

It answers the real teacher's seam, `write_batch(report, batch, pool) -> (examples, BatchStats)`, so actors, bus,
students, evaluator and early stopping run unchanged. It holds a hidden reservoir: the labelled train texts that
were not drawn as seeds (the students see them only through it). Asked for N examples of class c it returns N
unseen reservoir texts of c: the ones closest (cosine on a fixed embedding) to the plan's hard negatives, else
to the classes c is confused with, as a strong LLM asked for boundary cases would; unguided, at random.
`error_rate` of its labels are wrong (flipped to the contrast class when there is one, else to a random class).
Pool texts get their hidden gold label with the same noise and a confidence drawn so that wrong labels are the
less confident ones on average: Beta(6, 1.5) when right (mean 0.80), Beta(3, 3) when wrong (mean 0.50); labels
under `min_confidence` are dropped as for the real teacher. Every example it writes says `simulated`.
It is a teacher backend like the others (`teacher.backend: simulated`): it declares what the run prepares for it
(a reservoir, an encoder) and what the report says of it, and it has nothing to audit.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Callable, Literal

import numpy as np
from pydantic import Field

from pgkd.bus.messages import EvalReport, Example, TeacherAudit
from pgkd.teacher.audit import LabelPolicy, summarize
from pgkd.teacher.backends.base import TEACHER_BACKENDS, TeacherKind
from pgkd.teacher.planner import plan_for
from pgkd.teacher.prompts import ClassTask
from pgkd.teacher.seam import BatchStats, BatchTeacher, PoolText
from pgkd.teacher.settings import TeacherSettings

log = logging.getLogger(__name__)
RIGHT_CONFIDENCE, WRONG_CONFIDENCE = (6.0, 1.5), (3.0, 3.0)  # Beta parameters, see the module docstring


class SimulatedSettings(TeacherSettings):
    """A measuring instrument, never a teacher: it answers from the labelled train texts the seeds left over."""

    backend: Literal["simulated"] = "simulated"
    error_rate: float = Field(0.0, ge=0, le=1, description="share of its labels that are wrong: flipped to the "
                              "contrast class when the plan names one, else to a random other class")
    seconds_per_example: float = Field(0.0, ge=0, description="sleep per example written, to study the loop at "
                                       "the pace of a real model (e.g. 1 s for an 8B model on a GPU)")
    embedding: str = Field("embedded:all-MiniLM-L6-v2", description="encoder whose cosine picks the texts closest "
                           "to a contrast class or a hard negative")
    allow_repeats: bool = Field(False, description="reuse texts once a class's reservoir is spent (only for "
                                "load tests; every repeat is marked)")


@TEACHER_BACKENDS.register("simulated", SimulatedSettings)
class SimulatedTeacher(TeacherKind, BatchTeacher):
    needs_reservoir = True

    @classmethod
    def text_encoder(cls, settings: SimulatedSettings) -> str:
        return settings.embedding

    @classmethod
    def report_note(cls, settings: SimulatedSettings) -> str:
        return (f"simulated teacher (error_rate {settings.error_rate:g}, {settings.seconds_per_example:g} s per "
                f"example): labelled train texts the seeds left over, not a model")

    @classmethod
    def teacher(cls, settings: SimulatedSettings, job) -> "SimulatedTeacher":
        return cls(list(job.reservoir), job.embed, job.label_names, settings, job.name, job.seed(settings))

    def __init__(self, reservoir: list[dict], embed: Callable[[list[str]], np.ndarray], label_names: list[str],
                 config: SimulatedSettings, name: str, seed: int = 0):
        self.config, self.name = config, name
        self.policy = LabelPolicy.from_settings(config)
        self.label_names = label_names
        self.embed = embed
        self.rng = random.Random(seed)
        self.texts = [row["text"] for row in reservoir]
        self.row_of = {text: i for i, text in enumerate(self.texts)}  # pool texts are found by their text
        self.vectors = normalized(embed(self.texts)) if self.texts else np.zeros((0, 1))
        self.gold = [row["label"] for row in reservoir]
        self.by_label: dict[str, list[int]] = {label: [] for label in label_names}
        for i, label in enumerate(self.gold):
            self.by_label[label].append(i)
        self.centroids = {label: normalized(self.vectors[rows].mean(0, keepdims=True))[0]
                          for label, rows in self.by_label.items() if rows}
        self.used: set[int] = set()
        self.exhausted: set[str] = set()
        self.batches = 0

    @property
    def model_name(self) -> str:
        return f"simulated(error_rate={self.config.error_rate})"

    @property
    def done(self) -> bool:
        """Every class's reservoir is spent (never with allow_repeats): nothing more to write."""
        return not self.config.allow_repeats and not self._open_labels() and self.config.generate

    @property
    def writes_unprompted(self) -> bool:
        return self.config.generate

    def write_batch(self, report: EvalReport | None, batch: int | None = None,
                    pool: list[PoolText] = ()) -> tuple[list[Example], BatchStats]:
        started, stats = time.monotonic(), BatchStats()
        c = self.config
        number = self.batches if batch is None else batch
        plan_rng = random.Random(f"{c.seed}:{number}")
        examples = self._label_pool(list(pool), stats, report)
        if c.generate:
            labels = self._open_labels() if not self.config.allow_repeats else self.label_names
            plan = plan_for(c, labels, report, number, plan_rng) if labels else []
            for task in plan:
                examples += self._write(task, stats, report)
        stats.kept = len(examples)  # what the batch publishes, pool labels included (as the LLM teacher counts)
        time.sleep(self.config.seconds_per_example * len(examples))
        stats.busy_seconds = stats.generate_seconds = time.monotonic() - started
        self.batches += 1
        return examples, stats

    def _open_labels(self) -> list[str]:
        return [label for label in self.label_names if any(i not in self.used for i in self.by_label[label])]

    def _write(self, task: ClassTask, stats: BatchStats, report: EvalReport | None) -> list[Example]:
        picked = self._pick(task)
        repeats = self._repeats(task.label, task.count - len(picked)) if self.config.allow_repeats else []
        stats.generated += len(picked) + len(repeats)
        stats.exhausted += task.count - len(picked) - len(repeats)
        version = report.key if report else None
        return [Example(text=self.texts[i], label=self._noisy(task.label, task.contrast), source="generated",
                        teacher=f"{self.name}:simulated" + (" (repeated text)" if repeated else ""),
                        report_version=version, intended_label=task.label)
                for i, repeated in [(i, False) for i in picked] + [(i, True) for i in repeats]]

    def _pick(self, task: ClassTask) -> list[int]:
        """Unseen reservoir texts of the task's class, boundary cases first when the plan asks for them."""
        rows = [i for i in self.by_label[task.label] if i not in self.used]
        if len(rows) < task.count:
            self._say_exhausted(task.label)
        if not rows:
            return []
        if task.hard_negatives:
            near = normalized(self.embed([h.text for h in task.hard_negatives]))
            order = np.argsort(-(self.vectors[rows] @ near.T).max(1), kind="stable")
        elif task.contrast and all(label in self.centroids for label in task.contrast):
            toward = normalized(np.stack([self.centroids[label] for label in task.contrast]).mean(0, keepdims=True))
            order = np.argsort(-(self.vectors[rows] @ toward.T)[:, 0], kind="stable")
        else:
            order = self.rng.sample(range(len(rows)), len(rows))
        picked = [rows[int(j)] for j in order[:task.count]]
        self.used.update(picked)
        return picked

    def _repeats(self, label: str, count: int) -> list[int]:
        """Load tests only (allow_repeats): texts of the class written before, at random."""
        rows = self.by_label[label]
        return [self.rng.choice(rows) for _ in range(count)] if rows and count > 0 else []

    def _say_exhausted(self, label: str) -> None:
        if label not in self.exhausted:
            self.exhausted.add(label)
            log.warning("simulated teacher: the reservoir of class '%s' is spent; it writes no more of it", label)

    def _noisy(self, label: str, contrast: list[str]) -> str:
        if self.rng.random() >= self.config.error_rate:
            return label
        if contrast:
            return contrast[0]
        return self.rng.choice([other for other in self.label_names if other != label] or [label])

    def _label_pool(self, pool: list[PoolText], stats: BatchStats, report: EvalReport | None) -> list[Example]:
        """Gold labels of pool texts (known only for a pool drawn from train), noisy, with a confidence."""
        examples = []
        stats.pool_offered += len(pool)
        for item in pool:
            row = self.row_of.get(item.text)
            if row is None:
                stats.dropped["pool_no_gold"] += 1
                continue
            if row in self.used:  # already written for a class: a second copy would train twice
                stats.dropped["duplicate"] += 1
                continue
            gold = self.gold[row]
            label = self._noisy(gold, item.guesses[:1] if item.guesses and item.guesses[0] != gold else [])
            a, b = RIGHT_CONFIDENCE if label == gold else WRONG_CONFIDENCE
            confidence = self.rng.betavariate(a, b)
            self.used.add(row)
            if confidence < self.policy.min_confidence:
                stats.dropped["pool_low_confidence"] += 1
                continue
            examples.append(Example(text=item.text, label=label, source="pool", teacher=f"{self.name}:simulated",
                                    candidate_probs={label: round(confidence, 4)},
                                    report_version=report.key if report else None))
        stats.pool_labelled += len(examples)
        return examples


def simulated_audit(rows: list[dict], label_names: list[str], error_rate: float, target_precision: float,
                    seed: int = 0) -> TeacherAudit:
    """The audit a simulated teacher would get: each audit text labelled with the same noise and the same
    confidence model as its pool labels (a measuring instrument: the confidences are this module's assumption,
    Beta(6, 1.5) when right and Beta(3, 3) when wrong, not a model's)."""
    rng = random.Random(f"simulated-audit:{seed}")
    golds, labels, confidences = [], [], []
    for row in rows:
        gold = row["label"]
        wrong = rng.random() < error_rate
        label = rng.choice([n for n in label_names if n != gold] or [gold]) if wrong else gold
        a, b = RIGHT_CONFIDENCE if label == gold else WRONG_CONFIDENCE
        golds.append(gold)
        labels.append(label)
        confidences.append(rng.betavariate(a, b))
    return summarize(golds, labels, confidences, len(label_names), target_precision)


def normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
