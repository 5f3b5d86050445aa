"""A saved student's metadata file: what kind it is, its labels and the settings its kind needs to load it."""
from __future__ import annotations

import json
from pathlib import Path

META_FILE = "student.json"


def write_meta(folder: Path, meta: dict) -> None:
    (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=2))


def read_meta(folder: Path) -> dict:
    return json.loads((Path(folder) / META_FILE).read_text())
