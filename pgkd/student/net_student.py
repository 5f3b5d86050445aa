"""A kind whose numbers are one torch module, `self.net`, over the tensors its preprocessing `self.features`
makes of texts: prediction and export follow from those two, and by default saving too (the module's weights
and the settings block that builds it)."""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from pgkd.student.base import STUDENT_KINDS, Preprocessing, Student
from pgkd.student.inference import batched_probabilities
from pgkd.student.saved import inside, load_weights, read_meta, write_meta

NET_FILE = "net.pt"


class NetStudent(Student):
    net: torch.nn.Module
    features: Preprocessing
    preprocessing: ClassVar[type]  # the class of `features`, which loads it back from an exported folder

    def on_device(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: tensor.to(self.device) for name, tensor in inputs.items()}

    def predict_proba(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        return batched_probabilities(self.net, lambda chunk: self.on_device(self.features(chunk)), texts, batch_size,
                                     len(self.labels))

    def export_parts(self) -> tuple[torch.nn.Module, Preprocessing]:
        return self.net, self.features

    @classmethod
    def preprocessing_class(cls) -> type[Preprocessing]:
        return cls.preprocessing

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), folder / NET_FILE)
        write_meta(folder, {"kind": self.kind, "labels": self.labels,
                            "settings": self.settings.model_dump(mode="json")})
        return folder

    @classmethod
    def load(cls, folder: str | Path, device) -> "NetStudent":
        meta = read_meta(Path(folder))
        settings = STUDENT_KINDS.settings(meta["kind"]).model_validate(meta["settings"])
        student = cls(meta["labels"], settings, device)
        student.net.load_state_dict(load_weights(inside(folder, NET_FILE), device))
        return student
