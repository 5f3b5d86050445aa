"""Export a saved student: "hf" copies the native folder; "onnx" and "torchscript" ship the numeric part (tensors ->
logits) with the kind's preprocessing (tokenizer, hash settings, vocabulary) beside it, both as the kind gives
them (Student.export_parts). `load_student` opens an exported folder as an inference-only ExportedStudent giving
the same labels and probabilities.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import torch

from pgkd.student.commit import MANIFEST
from pgkd.student.registry import load_student
from pgkd.student.saved import EXPORT_FORMATS, exported_kind, write_meta

FORMATS = ("hf", *EXPORT_FORMATS)
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
# Tracing records one path through the code: the sample must pad (different lengths), so the mask path is kept
SAMPLE_TEXTS = ["where is my card", "", "I sent money to my friend yesterday but it has not arrived yet, why?"]
ATOL = 1e-4


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
    module, preprocess = student.export_parts()
    module.eval()
    dst.mkdir(parents=True, exist_ok=True)
    (dst / MANIFEST).unlink(missing_ok=True)  # an earlier "hf" export's: it would not describe this folder
    meta = {"kind": exported_kind(student.kind, fmt), "format": fmt, "base_kind": student.kind,
            "labels": student.labels, "model_file": MODEL_FILES[fmt], "inputs": list(preprocess.input_names),
            **preprocess.save(dst)}
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
    except Exception as exc:  # some layers (a graph student's) have no ONNX form in this exporter; tracing works
        raise NotImplementedError(f"ONNX export of this {kind} student failed in torch's TorchScript-based ONNX "
                                  f"exporter ({type(exc).__name__}: {exc}); use format 'torchscript'") from exc


def _check_same(original, exported, fmt: str) -> None:
    """Traces can silently bake in shapes or branches; compare on texts unlike the tracing sample."""
    texts = ["card", "money money transfer to my friend please", "", "an entirely unseen zyxq word", "balance?"]
    expected, got = original.predict_proba(texts), exported.predict_proba(texts)
    if not np.allclose(expected, got, atol=ATOL):
        raise RuntimeError(f"{fmt} export differs from the original by up to {np.abs(expected - got).max():.2e}")
