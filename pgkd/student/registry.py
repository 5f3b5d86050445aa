"""Student kinds by name: the table of "module:Class" entries in basics/registries.py, imported on first use, so naming a kind imports
nothing else. A kind is a class with a `kind` name, from_config(labels, config, device), fit, predict_proba,
save(folder) and load(folder, device)."""
from __future__ import annotations

from importlib import import_module
from pathlib import Path

import torch

from pgkd.basics.errors import InputError
from pgkd.basics.registries import STUDENT_KINDS
from pgkd.student.saved import META_FILE, check_meta, read_meta


def student_class(kind: str):
    if kind not in STUDENT_KINDS:
        raise ValueError(f"unknown student kind '{kind}' (known: {sorted(STUDENT_KINDS)})")
    module, cls = STUDENT_KINDS[kind].split(":")
    return getattr(import_module(module), cls)


def make_student(labels: list[str], config, device: str):
    return student_class(config.kind).from_config(labels, config, device)


def load_student(folder: str | Path, device: str | None = None):
    """Load any saved student: `load_student(path).predict(texts)`; without a device, on torch's default one."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: not a saved pgkd student")
    return student_class(read_meta(folder)["kind"]).load(folder, device or torch.get_default_device())


def open_saved_student(folder: str | Path, device: str | None = None):
    """load_student for a folder a user named: anything wrong with the folder is an InputError naming it.
    Loading reads files the user gave (weights, tokenizer, ONNX graph): whatever fails there is taken as a
    damaged folder; `pgkd --verbose` shows the traceback."""
    check_meta(folder)
    try:
        return load_student(folder, device)
    except Exception as exc:
        raise InputError(f"damaged student folder ({type(exc).__name__}: {str(exc)[:300]})", file=str(folder)) from exc
