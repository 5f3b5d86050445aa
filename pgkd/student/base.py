"""What every student kind is: a `Student` subclass in one file of pgkd/student/kinds/, with its own settings block
(a `StudentSettings` subclass whose `kind` is Literal["<name>"]), registered by `@STUDENT_KINDS.register(name,
SettingsClass)`. The family imports every module of that package, so a new kind is a new file and nothing else.

Callers (the trainer, the actors, the evaluator, export) use only what this class states; a capability a kind
lacks has a default here (no cache to share, no numeric part to export), so no caller probes for one.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar, Literal, Protocol

import numpy as np
import torch
from pydantic import Field, field_validator

from pgkd.basics.kinds import KindFamily
from pgkd.basics.settings import Settings
from pgkd.bus.messages import Example
from pgkd.student.inference import top_labels

STUDENT_KINDS = KindFamily("student kind", "kind", "encoder", ("pgkd.student.kinds",))
OnEpoch = Callable[[int, float], bool]  # (epoch, mean train loss) -> True to stop training now


class StudentSettings(Settings):
    """The fields every kind has: its pool (name, replicas, resources), continual training (versions, replay,
    label filter), the distillation loss, early stopping and active learning. A kind adds its own fields."""

    name: str = "minilm"
    kind: str
    min_new_examples: int = Field(16, ge=1)
    epochs: int = Field(150, ge=1, description="per version at most; early stopping on the steering texts "
                        "usually ends it sooner (60 left banking77 students short: test macro-F1 0.880 vs 0.889, "
                        "bench/value.py)")
    lr: float = Field(1e-2, gt=0)
    batch_size: int = Field(64, ge=1)
    temperature: float = Field(2.0, gt=0)
    # KD weight. Unset, the teacher audit sets it from the teacher's calibration error (teacher/audit.py kd_alpha):
    # 0 where soft labels are off. Soft labels of the embedded 270M teacher raised the very confusions they
    # describe (banking77, 100 teacher examples: validation macro-F1 0.838 with alpha 0, 0.798 with 0.5).
    alpha: float | None = Field(None, ge=0, le=1, description="KD weight of the soft labels; null: from the "
                                "teacher audit's calibration error (0 without an audit)")
    label_filter: float = Field(0.1, ge=0, lt=1, description="leave a teacher example out of a version when the "
                                "previous version gives its label less than this probability (a noisy teacher's "
                                "wrong labels); 0 keeps all")
    class_weighting: Literal["none", "balanced"] = Field("none", description="balanced: every class weighs the same "
                                                         "in the loss however many examples the teacher wrote of it")
    early_stop_every: int = Field(5, ge=1, description="epochs between validation-loss checks inside training")
    early_stop_patience: int = Field(3, ge=1, description="checks without a lower validation loss before stopping")
    seed: int = 0
    threads: int = Field(1, ge=1)
    gpus: float = Field(0, ge=0)
    replicas: int = Field(1, ge=1)
    replay: int | None = Field(4096, ge=0, description="old examples replayed per version at most (the new ones "
                               "always train): a version costs the new data plus this; null: all")
    replay_by: Literal["class", "random"] = Field("class", description="class: the replay keeps every class's share "
                                                  "of all examples so far, whatever the new batch lacks; random: a "
                                                  "random sample (a skewed batch pushes out the classes it lacks)")
    pool_queries: int = Field(32, ge=0, description="each pool scoring round with this student's checkpoint offers "
                              "the teachers this many of the pool texts it is least sure of (pool_strategy); 0: none")
    pool_strategy: Literal["margin", "entropy", "diverse_margin", "random"] = Field(
        "margin", description="which pool texts to offer: smallest top-2 margin, highest entropy, the smallest "
        "margins spread over k-means clusters of the student's probabilities, or at random (a control)")
    pool_balanced: bool = Field(False, description="offer pool texts spread over the classes the student "
                                "predicts for them, in turn (for pools where a few classes dominate)")
    pool_scorers: int = Field(1, ge=1, description="Ray Data actors that score the pool with this student's "
                              "best checkpoint (each loads it once; CPUs and GPUs as this student's threads and gpus)")

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, value: str) -> str:
        if not value.replace("-", "").replace("_", "").isalnum():
            raise ValueError("use letters, digits, - and _ only (it names a Ray actor)")
        return value


class Preprocessing(Protocol):
    """Texts -> the named tensors a kind's numeric module takes (token ids, hashed n-grams, word graphs). An
    export ships it beside the traced module, so it saves what it needs and loads from the export folder."""

    input_names: tuple[str, ...]  # the module's arguments, in order
    dynamic_axes: dict[str, dict[int, str]]  # per input, the axes that vary with the texts (for ONNX)

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]: ...

    def save(self, folder: Path) -> dict:
        """Write its files into `folder`; returns the entries student.json keeps for load."""

    @classmethod
    def load(cls, folder: Path, meta: dict) -> "Preprocessing": ...


class Student(ABC):
    """A text classifier over fixed labels that trains in versions: each `fit` warm-starts from the current
    weights on the examples it is given (the new ones and a replay of the old, trainer.py)."""

    kind_name: ClassVar[str]  # set by @STUDENT_KINDS.register
    labels: list[str]

    def __init__(self, labels: list[str], settings: StudentSettings, device):
        self.labels, self.settings, self.device = labels, settings, device

    @property
    def kind(self) -> str:
        """Its name in configs and in a saved folder's student.json."""
        return self.kind_name

    @classmethod
    def from_settings(cls, labels: list[str], settings: StudentSettings, device) -> "Student":
        """A new, untrained student for `labels` as its settings block describes it, on a torch device."""
        return cls(labels, settings, device)

    @abstractmethod
    def fit(self, examples: list[Example], settings: StudentSettings, on_epoch: OnEpoch | None = None) -> float:
        """Train on all `examples` (labels among self.labels; soft labels where the teacher gave them), warm
        start. `settings` is this kind's block; what training reads (epochs, lr, alpha, ...) may differ from the
        block it was built with. Returns the last epoch's mean loss; on_epoch returning True ends training."""

    @abstractmethod
    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """[len(texts), len(labels)] class probabilities (rows sum to 1), in the order of self.labels."""

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """(label, probability) of the most probable class of each text."""
        return top_labels(self.labels, self.predict_proba(texts))

    @abstractmethod
    def save(self, folder: str | Path) -> Path:
        """Everything `load` needs, in `folder` (created), with student.json holding at least kind and labels
        (saved.write_meta). Returns the folder."""

    @classmethod
    @abstractmethod
    def load(cls, folder: str | Path, device) -> "Student":
        """The student `save` wrote, on `device`, predicting as it did."""

    # ---- export to onnx / torchscript (pgkd/student/export.py); "hf" copies the saved folder and needs nothing
    def export_parts(self) -> tuple[torch.nn.Module, Preprocessing]:
        """(module: the preprocessing's tensors -> logits, preprocessing: texts -> those tensors)."""
        raise NotImplementedError(f"a '{self.kind}' student cannot be exported to onnx/torchscript "
                                  f"(export format 'hf' ships the native folder)")

    @classmethod
    def preprocessing_class(cls) -> type[Preprocessing]:
        """The class whose `load` reads back the preprocessing export_parts saved in an exported folder."""
        raise NotImplementedError(f"no preprocessing known for student kind '{cls.kind_name}'")

    # ---- per-text caches
    def share_cache(self, other: "Student") -> None:
        """Reuse what `other` computed per text where both compute it alike (a frozen encoder's embeddings), so
        scoring a new version does not recompute it; nothing by default."""

    def drop_cache(self) -> None:
        """Forget what was kept per text (a pool scorer sees each text once, and the cache would grow with the
        pool); nothing by default."""
