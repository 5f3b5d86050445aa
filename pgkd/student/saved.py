"""A saved student's metadata file: what kind it is, its labels and the settings its kind needs to load it.
Its kind is a registered one, or "<kind>-<format>" for a student exported to one of EXPORT_FORMATS."""
from __future__ import annotations

import json
from pathlib import Path

from pgkd.basics.errors import InputError
from pgkd.basics.json_files import read_json_file
from pgkd.student.base import STUDENT_KINDS

META_FILE = "student.json"
EXPORT_FORMATS = ("onnx", "torchscript")  # traced: the numeric part, preprocessing beside it


def write_meta(folder: Path, meta: dict) -> None:
    (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=2))


def read_meta(folder: Path) -> dict:
    return json.loads((Path(folder) / META_FILE).read_text())


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
