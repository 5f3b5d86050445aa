"""Student kinds by name, from the family of registered kinds (pgkd/student/base.py STUDENT_KINDS): make a new
student from its settings block, or load any saved one, native or exported."""
from __future__ import annotations

from pathlib import Path

import torch

from pgkd.basics import storage
from pgkd.basics.errors import InputError
from pgkd.student.base import STUDENT_KINDS, Student, StudentSettings
from pgkd.student.commit import verify
from pgkd.student.exported import ExportedStudent
from pgkd.student.saved import EXPORT_FORMATS, META_FILE, check_links, check_meta, read_meta


def student_class(kind: str) -> type[Student]:
    """The class that loads a folder of this kind: the registered kind's, or ExportedStudent for
    "<kind>-<format>"."""
    base, _, fmt = kind.rpartition("-")
    if fmt in EXPORT_FORMATS and base in STUDENT_KINDS.names():
        return ExportedStudent
    return STUDENT_KINDS.implementation(kind)


def make_student(labels: list[str], settings: StudentSettings, device) -> Student:
    return student_class(settings.kind).from_settings(labels, settings, device)


def load_student(folder: str | Path, device: str | None = None) -> Student:
    """Load any saved student: `load_student(path).predict(texts)`; without a device, on torch's default one.
    Safe on a folder from anywhere (saved.py states the rule); a folder with a manifest must match it
    (commit.py), else an InputError names the torn file. A URI (s3://bucket/runs/RUN_ID/best_student) is
    fetched into node-local scratch first, each file checked against the folder's manifest."""
    if storage.is_uri(str(folder)):
        try:
            folder = storage.fetch_folder(str(folder))
        except storage.TornFolder as exc:  # as a torn local folder is: an InputError naming the file
            raise InputError(str(exc), file=str(folder)) from None
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: not a saved pgkd student")
    check_links(folder)
    verify(folder)
    return student_class(read_meta(folder)["kind"]).load(folder, device or torch.get_default_device())


def open_saved_student(folder: str | Path, device: str | None = None) -> Student:
    """load_student for a folder a user named: anything wrong with the folder is an InputError naming it.
    Loading reads files the user gave (weights, tokenizer, ONNX graph): whatever fails there is taken as a
    damaged folder; `pgkd --verbose` shows the traceback."""
    if storage.is_uri(str(folder)):
        try:
            folder = storage.fetch_folder(str(folder))
        except (OSError, ValueError) as exc:  # no manifest (not a committed student), a torn file, no access
            raise InputError(f"cannot fetch a student from here ({type(exc).__name__}: {str(exc)[:300]})",
                             file=str(folder)) from exc
    check_meta(folder)
    try:
        return load_student(folder, device)
    except InputError:  # already names the file and what is wrong with it
        raise
    except Exception as exc:
        raise InputError(f"damaged student folder ({type(exc).__name__}: {str(exc)[:300]})", file=str(folder)) from exc
