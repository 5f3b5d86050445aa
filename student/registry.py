"""Student kinds by name. A kind is a class with from_config(labels, config, device), fit, predict_proba,
save(folder) and load(folder, device)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

STUDENT_KINDS: dict[str, Callable] = {}
META_FILE = "student.json"


def write_meta(folder: Path, meta: dict) -> None:
    (Path(folder) / META_FILE).write_text(json.dumps(meta, indent=2))


def read_meta(folder: Path) -> dict:
    return json.loads((Path(folder) / META_FILE).read_text())


def top_labels(labels: list[str], probs) -> list[tuple[str, float]]:
    """(label, probability) of the most probable class of each row."""
    return [(labels[i], float(p[i])) for p, i in zip(probs, probs.argmax(1))]


def register_student(kind: str):
    def wrap(cls):
        STUDENT_KINDS[kind] = cls
        cls.kind = kind
        return cls

    return wrap


def student_class(kind: str):
    from student import encoder, export, graph, ngram  # noqa: F401  (register their kinds)

    if kind not in STUDENT_KINDS:
        raise ValueError(f"unknown student kind '{kind}' (known: {sorted(STUDENT_KINDS)})")
    return STUDENT_KINDS[kind]


def make_student(labels: list[str], config, device: str):
    return student_class(config.kind).from_config(labels, config, device)


def load_student(folder: str | Path, device: str | None = None):
    """Load any saved student: `load_student(path).predict(texts)`."""
    from cluster.placement import cpu_device

    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: not a saved pgkd student")
    meta = json.loads(meta_path.read_text())
    return student_class(meta["kind"]).load(folder, device or cpu_device())
