"""Dataset folders: labels.json, train/validation/test.jsonl and an optional unlabeled.jsonl.

Every line is {"text": ..., "label": ...}; anything else is refused with the file, line and field.
"""
from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pgkd.basics.errors import InputError

REQUIRED_SPLITS = ("train", "validation", "test")
MAX_TEXT_CHARS = 10_000  # short-text classification; a longer "text" is almost always a wrong field or file


@dataclass(frozen=True)
class Label:
    name: str
    description: str = ""

    @property
    def display(self) -> str:
        """Human words for prompts: 'card_arrival' -> 'card arrival'."""
        return self.name.replace("_", " ").replace("/", " / ")


@dataclass
class Dataset:
    labels: list[Label]
    train: list[dict]
    validation: list[dict]
    test: list[dict]
    unlabeled: list[dict] = field(default_factory=list)
    path: Path | None = None

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]


def load_labels(path: Path) -> list[Label]:
    if not path.is_file():
        raise InputError("missing labels file", file=str(path))
    try:
        raw = json.loads(decode_line(path.read_bytes(), path, 1))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=str(path), line=exc.lineno) from exc
    if isinstance(raw, dict):
        raw = [{"name": k, "description": v or ""} for k, v in raw.items()]
    if not isinstance(raw, list) or not raw:
        raise InputError("expected a non-empty list of names or {name, description}", file=str(path))
    labels = [_parse_label(item, path, i) for i, item in enumerate(raw)]
    names = [label.name for label in labels]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"duplicate label names {dupes}", file=str(path))
    return labels


def _parse_label(item, path: Path, index: int) -> Label:
    if isinstance(item, str) and item.strip():
        return Label(item)
    if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"].strip():
        return Label(item["name"], str(item.get("description") or ""))
    raise InputError("each label is a non-empty string or {name, description}", file=str(path), field=f"[{index}]")


def read_jsonl(path: Path, label_names: set[str] | None, need_label: bool = True) -> list[dict]:
    """Read a split; refuses bad JSON, empty texts, unknown labels, naming file, line and field."""
    rows = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = decode_line(raw, path, number)
            if not line.strip():
                continue
            rows.append(_parse_row(line, path, number, label_names, need_label))
    return rows


def decode_line(raw: bytes, path: Path, number: int) -> str:
    """UTF-8 text, or an InputError with the line (counted from `number`) of the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = number + raw[: exc.start].count(b"\n")
        raise InputError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
                         file=str(path), line=line) from exc


def _parse_row(line: str, path: Path, number: int, label_names, need_label: bool) -> dict:
    where = {"file": str(path), "line": number}
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", **where) from exc
    if not isinstance(row, dict):
        raise InputError("expected an object {text, label}", **where)
    text = row.get("text")
    problem = text_problem(text)
    if problem:
        raise InputError(problem, field="text", **where)
    label = row.get("label")
    if need_label or label is not None:
        if not isinstance(label, str):
            raise InputError("label is missing or not a string", field="label", **where)
        if label_names is not None and label not in label_names:
            raise InputError(f"unknown label '{label}' (not in labels.json)", field="label", **where)
    return {"text": text.strip(), "label": label}


def text_problem(text) -> str | None:
    """Why a row's "text" cannot be used (None: it can): the one rule for splits and pool files alike."""
    if not isinstance(text, str) or not text.strip():
        return "text is missing or empty"
    if len(text) > MAX_TEXT_CHARS:
        return (f"text has {len(text)} characters, more than the {MAX_TEXT_CHARS} pgkd accepts "
                f"(short-text classification)")
    return None


def load_dataset(folder: str | Path) -> Dataset:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("dataset folder not found", file=str(folder))
    labels = load_labels(folder / "labels.json")
    names = {label.name for label in labels}
    splits = {}
    for split in REQUIRED_SPLITS:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            raise InputError(f"missing split file {split}.jsonl", file=str(path))
        splits[split] = read_jsonl(path, names)
        if not splits[split]:
            raise InputError("split is empty", file=str(path))
    pool_path = folder / "unlabeled.jsonl"
    unlabeled = read_jsonl(pool_path, names, need_label=False) if pool_path.is_file() else []
    unscored = sorted(names - {row["label"] for row in splits["validation"]})
    if unscored:  # it would score F1 0 for ever, and the teacher would be steered to it for ever
        raise InputError(f"labels with no validation text: {unscored[:10]}" + (" ..." if len(unscored) > 10 else ""),
                         file=str(folder / "validation.jsonl"))
    return Dataset(labels=labels, unlabeled=unlabeled, path=folder, **splits)


def overlap(rows: list[dict], others: list[dict]) -> int:
    """How many of rows have a text (after normalize_text) that is also in others: train texts that are
    validation or test texts inflate the scores."""
    seen = {normalize_text(row["text"]) for row in others}
    return sum(normalize_text(row["text"]) in seen for row in rows)


def sample_per_class(rows: list[dict], per_class: int | None, seed: int) -> list[dict]:
    """Keep at most per_class rows of each label, chosen reproducibly (sparse annotation)."""
    if per_class is None:
        return list(rows)
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    rng = random.Random(seed)
    kept = []
    for label in sorted(by_label):
        group = by_label[label]
        kept.extend(rng.sample(group, min(per_class, len(group))))
    return kept


def split_per_class(rows: list[dict], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(rest, held out): round(share * n) rows of each label held out, chosen reproducibly; a label with a single
    row keeps it in rest (the teacher's steering needs every class scored)."""
    if share <= 0:
        return list(rows), []
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    rng = random.Random(f"split:{seed}")
    rest, held = [], []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        k = min(len(group) - 1, round(share * len(group)))
        held.extend(group[:k])
        rest.extend(group[k:])
    return rest, held


def dedupe_texts(rows: list[dict]) -> list[dict]:
    """Drop exact repeats of a text within a split (first one wins)."""
    seen, kept = set(), []
    for row in rows:
        key = normalize_text(row["text"])
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def rows_not_taken(rows: list[dict], taken_texts: list[str]) -> list[dict]:
    """rows without repeats and without any whose text (normalized) is among taken_texts: what is left for a
    pool or a simulated teacher after the seeds and the validation and test texts."""
    taken = {normalize_text(text) for text in taken_texts}
    return [row for row in dedupe_texts(rows) if normalize_text(row["text"]) not in taken]


def normalize_text(text: str) -> str:
    """The key duplicates are judged by: lower case, letters and digits only."""
    return " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())
