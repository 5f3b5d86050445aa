"""Export a saved student: "hf" copies the native folder; "onnx" and "torchscript" ship the numeric part (tensors ->
logits) with the kind's preprocessing metadata (tokenizer, hash settings, vocabulary) beside it. `load_student`
opens an exported folder as an inference-only ExportedStudent giving the same labels and probabilities.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pgkd.student.inference import top_labels
from pgkd.student.registry import load_student
from pgkd.student.saved import read_meta, write_meta

FORMATS = ("hf", "onnx", "torchscript")
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
# Tracing records one path through the code: the sample must pad (different lengths), so the mask path is kept
SAMPLE_TEXTS = ["where is my card", "", "I sent money to my friend yesterday but it has not arrived yet, why?"]
ATOL = 1e-4


class EncoderLogits(torch.nn.Module):
    """The encoder student's numeric part: encoder, pooling, normalisation, head (as EncoderStudent computes it)."""

    def __init__(self, student):
        super().__init__()
        self.encoder, self.head = student.encoder, student.head
        self.cls, self.scale = student.pooling == "cls", student.feature_scale

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.cls:
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-6)
        return self.head(F.normalize(pooled, dim=-1) * self.scale)


class TokenizerInputs:
    """The encoder student's preprocessing: its tokenizer, saved into the export folder."""

    input_names = ("input_ids", "attention_mask")
    dynamic_axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}

    def __init__(self, tokenizer, max_length: int):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {name: batch[name] for name in self.input_names}

    def save(self, folder: Path) -> dict:
        self.tokenizer.save_pretrained(folder / "tokenizer")
        return {"tokenizer": "tokenizer", "max_length": self.max_length}

    @classmethod
    def load(cls, folder: Path, meta: dict) -> "TokenizerInputs":
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(Path(folder) / meta["tokenizer"]), meta["max_length"])


def numeric_parts(student) -> tuple[torch.nn.Module, object]:
    """(module: tensors -> logits, preprocessing: texts -> named tensors) of a native student."""
    if student.kind == "encoder":
        return EncoderLogits(student), TokenizerInputs(student.tokenizer, student.max_length)
    if hasattr(student, "export_parts"):
        return student.export_parts()
    raise ValueError(f"a '{student.kind}' student cannot be exported to onnx/torchscript (export the native one)")


def preprocessing_class(base_kind: str):
    if base_kind == "encoder":
        return TokenizerInputs
    if base_kind == "ngram":
        from pgkd.student.ngram import HashedNgrams

        return HashedNgrams
    if base_kind == "graph":
        from pgkd.student.graph import TextGraphs

        return TextGraphs
    raise ValueError(f"no preprocessing known for student kind '{base_kind}'")


def export_student(src_folder: str | Path, dst_folder: str | Path, fmt: str, device: str | None = None) -> Path:
    """Export the student saved in src_folder to dst_folder; checks the export predicts as the original.
    The caller picks the device to trace on (the CLI: the CPU, so the file runs anywhere)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format '{fmt}' (known: {', '.join(FORMATS)})")
    src, dst = Path(src_folder), Path(dst_folder)
    if fmt == "hf":
        shutil.copytree(src, dst, dirs_exist_ok=True)
        return dst
    student = load_student(src, device)
    module, preprocess = numeric_parts(student)
    module.eval()
    dst.mkdir(parents=True, exist_ok=True)
    meta = {"kind": f"{student.kind}-{fmt}", "format": fmt, "base_kind": student.kind, "labels": student.labels,
            "model_file": MODEL_FILES[fmt], "inputs": list(preprocess.input_names), **preprocess.save(dst)}
    sample = preprocess(SAMPLE_TEXTS)
    args = tuple(sample[name] for name in preprocess.input_names)
    with torch.no_grad(), warnings.catch_warnings():
        # tracer and legacy-exporter warnings are noise here: _check_same below catches a trace that went wrong
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        if fmt == "torchscript":
            torch.jit.trace(module, args, check_trace=False).save(str(dst / MODEL_FILES[fmt]))
        else:
            _export_onnx(module, args, preprocess, dst / MODEL_FILES[fmt], student.kind)
    write_meta(dst, meta)
    _check_same(student, load_student(dst, device), fmt)
    return dst


def _export_onnx(module, args, preprocess, path: Path, kind: str) -> None:
    # dynamo=False: the torch.export-based exporter needs onnxscript, which is not installed
    try:
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=18,
                          input_names=list(preprocess.input_names), output_names=["logits"],
                          dynamic_axes=dict(preprocess.dynamic_axes))
    except Exception as exc:
        if kind != "graph":
            raise
        raise NotImplementedError(f"ONNX export of this graph student failed in torch's TorchScript-based ONNX "
                                  f"exporter ({type(exc).__name__}: {exc}); use format 'torchscript'") from exc


def _check_same(original, exported, fmt: str) -> None:
    """Traces can silently bake in shapes or branches; compare on texts unlike the tracing sample."""
    texts = ["card", "money money transfer to my friend please", "", "an entirely unseen zyxq word", "balance?"]
    expected, got = original.predict_proba(texts), exported.predict_proba(texts)
    if not np.allclose(expected, got, atol=ATOL):
        raise RuntimeError(f"{fmt} export differs from the original by up to {np.abs(expected - got).max():.2e}")


class ExportedStudent:
    """An exported student, inference only: the kind's preprocessing in Python, the numeric part in ONNX Runtime
    or TorchScript."""

    def __init__(self, folder: Path, meta: dict, preprocess, run):
        self.folder, self.kind, self.labels = folder, meta["kind"], meta["labels"]
        self.format, self.preprocess, self._run = meta["format"], preprocess, run

    @classmethod
    def load(cls, folder: str | Path, device: str):
        folder = Path(folder)
        meta = read_meta(folder)
        preprocess = preprocessing_class(meta["base_kind"]).load(folder, meta)
        runner = _onnx_runner if meta["format"] == "onnx" else _torchscript_runner
        return cls(folder, meta, preprocess, runner(folder / meta["model_file"], meta["inputs"], device))

    @classmethod
    def from_config(cls, labels, config, device):
        raise ValueError(f"'{config.kind}' is an export format, not a kind to train: use its base kind")

    def fit(self, examples, config, on_epoch=None) -> float:
        raise NotImplementedError("an exported student is inference-only: train the native one and export again")

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        chunks = [self._run(self.preprocess(texts[s:s + batch_size])) for s in range(0, len(texts), batch_size)]
        logits = torch.cat(chunks) if chunks else torch.zeros(0, len(self.labels))
        return torch.softmax(logits, dim=-1).numpy()

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        return top_labels(self.labels, self.predict_proba(texts))

    def save(self, folder: str | Path) -> Path:
        if Path(folder).resolve() != self.folder.resolve():
            shutil.copytree(self.folder, folder, dirs_exist_ok=True)
        return Path(folder)


def _onnx_runner(path: Path, names: list[str], device: str):
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


def _torchscript_runner(path: Path, names: list[str], device: str):
    module = torch.jit.load(str(path), map_location=device).eval()

    def run(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.inference_mode():
            return module(*[inputs[n].to(device) for n in names]).cpu()

    return run
