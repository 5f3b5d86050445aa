"""An exported student folder, inference only: the base kind's preprocessing in Python, the numeric part in ONNX
Runtime or TorchScript. Its kind is "<base kind>-<format>" (pgkd/student/export.py writes it).

An ONNX graph is data for ONNX Runtime. A TorchScript file is a program: loading it runs the code it holds, with
the operators torch offers, so load a TorchScript export only from a source you trust (a warning says so each
time one is loaded); prefer ONNX, or the native folder, for students from elsewhere."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from pgkd.student.base import STUDENT_KINDS, Student
from pgkd.student.saved import EXPORT_FORMATS, inside, read_meta

log = logging.getLogger(__name__)


class ExportedStudent(Student):
    def __init__(self, folder: Path, meta: dict, preprocess, run):
        self.folder, self._kind, self.labels = folder, meta["kind"], meta["labels"]
        self.format, self.preprocess, self._run = meta["format"], preprocess, run

    @property
    def kind(self) -> str:
        return self._kind

    @classmethod
    def load(cls, folder: str | Path, device) -> "ExportedStudent":
        folder = Path(folder)
        meta = read_meta(folder)
        if meta.get("format") not in EXPORT_FORMATS:
            raise ValueError(f"unknown export format {meta.get('format')!r} (known: {', '.join(EXPORT_FORMATS)})")
        preprocess = STUDENT_KINDS.implementation(meta["base_kind"]).preprocessing_class().load(folder, meta)
        runner = _onnx_runner if meta["format"] == "onnx" else _torchscript_runner
        model = inside(folder, meta["model_file"], "model_file")
        return cls(folder, meta, preprocess, runner(model, meta["inputs"], device))

    @classmethod
    def from_settings(cls, labels, settings, device):
        raise ValueError(f"'{settings.kind}' is an export format, not a kind to train: use its base kind")

    def fit(self, examples, settings, on_epoch=None) -> float:
        raise NotImplementedError("an exported student is inference-only: train the native one and export again")

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        chunks = [self._run(self.preprocess(texts[s:s + batch_size])) for s in range(0, len(texts), batch_size)]
        logits = torch.cat(chunks) if chunks else torch.zeros(0, len(self.labels))
        return torch.softmax(logits, dim=-1).numpy()

    def save(self, folder: str | Path) -> Path:
        if Path(folder).resolve() != self.folder.resolve():
            shutil.copytree(self.folder, folder, dirs_exist_ok=True)
        return Path(folder)


def _onnx_runner(path: Path, names: list[str], device):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about harmless renames inside EmbeddingBag's loop
    options.intra_op_num_threads = torch.get_num_threads()  # keep to this process's thread budget
    providers = onnx_providers(torch.device(device).type, ort.get_available_providers())
    session = ort.InferenceSession(str(path), options, providers=providers)
    wanted = [i.name for i in session.get_inputs()]  # the exporter drops inputs the model ignores (GIN: weights)
    return lambda inputs: torch.from_numpy(session.run(["logits"], {n: inputs[n].numpy() for n in wanted})[0])


def onnx_providers(device_type: str, available: list[str]) -> list[str]:
    """ONNX Runtime's providers for the student's device: its own ("CUDAExecutionProvider" for a CUDA device)
    first where installed, always the CPU one last."""
    own = [p for p in available if p.lower().startswith(device_type) and p != "CPUExecutionProvider"]
    return own + ["CPUExecutionProvider"]


def _torchscript_runner(path: Path, names: list[str], device):
    """Loading TorchScript runs the program the file holds (see the module's docstring)."""
    log.warning("%s is TorchScript: loading it runs the code it holds; load TorchScript only from a source you "
                "trust (an ONNX export is data)", path)
    module = torch.jit.load(str(path), map_location=device).eval()

    def run(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return module(*[inputs[n].to(device) for n in names]).cpu()

    return run
