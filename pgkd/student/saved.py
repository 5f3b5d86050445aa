"""A saved student's metadata file: what kind it is, its labels and the settings its kind needs to load it."""
from __future__ import annotations

import json
from pathlib import Path

from pgkd.basics.errors import InputError
from pgkd.basics.json_files import read_json_file
from pgkd.basics.registries import STUDENT_KINDS

META_FILE = "student.json"


def write_meta(folder: Path, meta: dict) -> None:
    (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=2))


def read_meta(folder: Path) -> dict:
    return json.loads((Path(folder) / META_FILE).read_text())


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
    if meta.get("kind") not in STUDENT_KINDS:
        raise InputError(f"unknown kind {meta.get('kind')!r} (known: {sorted(STUDENT_KINDS)})", file=str(path),
                         field="kind")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        raise InputError("damaged: expected a non-empty list of label names", file=str(path), field="labels")
    return meta
