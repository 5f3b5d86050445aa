"""A saved student's metadata file: what kind it is, its labels and the settings its kind needs to load it.
Its kind is a registered one, or "<kind>-<format>" for a student exported to one of EXPORT_FORMATS.

A saved folder is data from wherever the user got it, so loading it follows one rule: **a student folder never
makes pgkd read or run anything outside it, except pgkd's own embedded models.** Hence:
- every file name student.json gives (weights, tokenizer, vocabulary, an exported model, a shipped encoder) is a
  relative path that stays inside the folder with symlinks resolved (`inside`); an absolute path, a `..` that
  climbs out, or a symlink anywhere in the folder that points out of it (`check_links`) is refused;
- weights are read with `torch.load(weights_only=True)` (`load_weights`): tensors and plain containers only, so a
  pickle payload is refused before any of it runs;
- an encoder named rather than shipped (kinds/encoder.py `saved_encoder`) must be an embedded one or a Hugging
  Face hub id already in this machine's cache, loaded from the cache alone (never downloaded, no remote code); a
  run whose frozen encoder is a local folder ships that encoder inside each checkpoint instead;
- TorchScript exports are programs, not data: loading one runs its code, and is logged as such (exported.py).
Every refusal is an InputError naming the file, which `pgkd predict` prints as `pgkd: error: ...`."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from pgkd.basics.atomic_files import write_atomic
from pgkd.basics.errors import InputError
from pgkd.basics.json_files import read_json_file
from pgkd.student.base import STUDENT_KINDS

META_FILE = "student.json"
EXPORT_FORMATS = ("onnx", "torchscript")  # traced: the numeric part, preprocessing beside it


def write_meta(folder: Path, meta: dict) -> None:
    write_atomic(Path(folder) / META_FILE, json.dumps(meta, indent=2))  # a reader never sees half a student.json


def read_meta(folder: Path) -> dict:
    return json.loads(inside(folder, META_FILE).read_text())


def inside(folder: str | Path, name, field: str | None = None) -> Path:
    """folder/name, if name is a relative path that stays inside the folder once symlinks are resolved; else an
    InputError naming student.json (and the field that gave the name)."""
    root = Path(folder).resolve()
    meta = str(Path(folder) / META_FILE)
    if not isinstance(name, str) or not name:
        raise InputError(f"expected a file name inside the student folder, got {name!r}", file=meta, field=field)
    if Path(name).is_absolute() or not (root / name).resolve().is_relative_to(root):
        raise InputError(f"{name!r} is outside the student folder: refused (a saved student may only name its "
                         f"own files)", file=meta, field=field)
    return root / name


def check_links(folder: str | Path) -> None:
    """Refuse a folder holding a symlink that leads out of it: libraries that load a subfolder (a tokenizer, an
    encoder) open every file they find there, whatever student.json says."""
    root = Path(folder).resolve()
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(parent) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise InputError(f"a symlink to {os.readlink(path)!r}, outside the student folder: refused",
                                 file=str(path))


def load_weights(path: Path, device):
    """torch.load of tensors and plain containers only; anything else in the pickle (objects whose unpickling
    would run code) is refused without running it."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as exc:  # torch's message says what it met, among advice that does not apply
        found = next((line for line in str(exc).splitlines() if "GLOBAL" in line), "")
        raise InputError(f"holds pickled objects other than tensors; refused, nothing in it was run ({found})",
                         file=str(path)) from exc
    except Exception as exc:  # a torn or foreign file: RuntimeError from the zip reader
        raise InputError(f"not a readable weights file ({type(exc).__name__}: {str(exc)[:160]})",
                         file=str(path)) from exc


def saved_kinds() -> list[str]:
    """Every kind a saved folder may name: the registered kinds and their exports."""
    kinds = STUDENT_KINDS.names()
    return kinds + [exported_kind(kind, fmt) for kind in kinds for fmt in EXPORT_FORMATS]


def exported_kind(kind: str, fmt: str) -> str:
    return f"{kind}-{fmt}"


def check_meta(folder: str | Path) -> dict:
    """The metadata of a saved student folder, or an InputError naming what is wrong with the folder."""
    folder = Path(folder)
    path = folder / META_FILE
    if not folder.is_dir():
        raise InputError("not a folder" if folder.exists() else "no such folder", file=str(folder))
    if not path.is_file():
        raise InputError(f"no {META_FILE} here: not a saved pgkd student", file=str(path))
    check_links(folder)
    meta = read_json_file(path)
    if not isinstance(meta, dict):
        raise InputError("damaged: expected a JSON object", file=str(path))
    if meta.get("kind") not in saved_kinds():
        raise InputError(f"unknown kind {meta.get('kind')!r} (known: {saved_kinds()})", file=str(path),
                         field="kind")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        raise InputError("damaged: expected a non-empty list of label names", file=str(path), field="labels")
    return meta
