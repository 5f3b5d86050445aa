"""Checkpoint folders are committed whole. The writer fills a hidden temporary folder beside the target, fsyncs
every file and folder in it, writes `manifest.json` (each file's path relative to the folder, size and sha256)
last, renames the folder into place and fsyncs the parent. A reader therefore sees the whole version or none of it,
and a file torn or changed after the commit (a disk fault, a partial copy) fails `verify` with the file and the
reason, instead of loading as a silently different model.

The manifest is optional: folders without one (older runs, exports, folders a user made) load as before; a folder
with one must match it. It guards against accidents, not attackers (whoever can edit a file can edit the manifest):
what keeps a hostile folder harmless is saved.py's path rules and weights-only loading."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

from pgkd.basics import storage
from pgkd.basics.atomic_files import current_umask, fsync_folder, write_atomic
from pgkd.basics.errors import InputError

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
VERSION_NAME = re.compile(r"v(\d{4,})")  # the trainer's vNNNN; hidden temporary folders never match
T = TypeVar("T")


def commit_folder(write: Callable[[Path], object], final: str | Path) -> Path:
    """Call `write(folder)` on a new temporary folder, then commit it as `final` (replacing an older folder of
    that name, e.g. a version trained again after a crash before it was published). If `write` raises, nothing
    is left behind and `final` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _drop_leftovers(final)  # a writer of this name killed mid-write (SIGKILL skips the cleanup below)
    temp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        os.chmod(temp, 0o777 & ~current_umask())  # mkdtemp makes it 0700 whatever the umask says
        write(temp)
        write_manifest(temp)
        _move_into_place(temp, final)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def commit_copy(source: str | Path, final: str | Path) -> Path:
    """Commit a copy of a saved folder (e.g. a run's best student), after checking the source is sound."""
    verify(source)
    return commit_folder(lambda temp: shutil.copytree(source, temp, dirs_exist_ok=True), final)


def write_manifest(folder: Path) -> None:
    """fsync every file and subfolder (so the rename cannot land before the data), then write the manifest."""
    files = {}
    for root, dirs, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            if path.name == MANIFEST and path.parent == folder:
                continue
            files[path.relative_to(folder).as_posix()] = _digest(path, sync=True)
        fsync_folder(root)
    write_atomic(folder / MANIFEST, json.dumps({"files": dict(sorted(files.items()))}, indent=1))


def verify(folder: str | Path) -> None:
    """Nothing if the folder has no manifest or matches it; else an InputError naming the file and what is
    wrong (missing, truncated or grown, changed). Files the manifest does not list are not checked."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.exists():
        return
    try:
        files = json.loads(path.read_text())["files"]
        entries = [(name, int(entry["size"]), str(entry["sha256"])) for name, entry in files.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"damaged manifest ({type(exc).__name__}: {exc})", file=str(path)) from exc
    for name, size, sha256 in entries:
        target = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise InputError(f"manifest names {name!r}, outside the folder", file=str(path))
        if not target.is_file():
            raise InputError(f"missing: listed in {MANIFEST} but not in the folder (torn checkpoint)", file=str(target))
        actual = target.stat().st_size
        if actual != size:
            raise InputError(f"{actual} bytes where {MANIFEST} says {size} (truncated or changed after commit)",
                             file=str(target))
        if _digest(target)["sha256"] != sha256:
            raise InputError(f"content differs from {MANIFEST} (sha256; changed after commit)", file=str(target))


def newest_loadable(paths: list[Path], load: Callable[[Path], T]) -> tuple[T | None, Path | None]:
    """load() of the first of `paths` (newest first) that loads, logging why each one before it did not;
    (None, None) when none does."""
    for path in paths:
        try:
            return load(path), path
        except Exception as exc:  # a torn or missing checkpoint: an older committed one will do
            log.warning("checkpoint %s cannot be loaded (%s: %s); trying the one before it", path,
                        type(exc).__name__, exc)
    return None, None


def sound_version(path: str | Path) -> str | Path:
    """`path` if it verifies, else the newest older vNNNN beside it that does (logging why each newer one
    failed); an InputError when none does. In run storage by URI, verifying is fetching (storage.py)."""
    if storage.is_uri(str(path)):
        return _sound_stored_version(str(path))
    path = Path(path)
    number = _number(path)
    siblings = path.parent.iterdir() if number is not None and path.parent.is_dir() else []
    older = sorted((p for p in siblings if (_number(p) if _number(p) is not None else number) < number),
                   key=_number, reverse=True)
    for candidate in [path, *older]:
        try:
            verify(candidate)
        except InputError as exc:
            log.warning("checkpoint %s fails verification (%s); falling back to the version before it", candidate, exc)
            continue
        if candidate.is_dir():
            return candidate
    raise InputError("no sound checkpoint at or before this version", file=str(path))


def _number(path: Path) -> int | None:
    match = VERSION_NAME.fullmatch(path.name)
    return int(match.group(1)) if match else None


def _digest(path: Path, sync: bool = False) -> dict:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
        if sync:
            os.fsync(f.fileno())
    return {"size": path.stat().st_size, "sha256": sha.hexdigest()}


def _move_into_place(temp: Path, final: Path) -> None:
    old = None
    if final.exists() or final.is_symlink():  # os.rename will not replace a non-empty folder: move it aside first
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
        os.rename(final, old / "folder")
    os.rename(temp, final)
    fsync_folder(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _drop_leftovers(final: Path) -> None:
    for leftover in final.parent.glob(f".{glob_escape(final.name)}.*"):
        if leftover.suffix in (".tmp", ".old") and leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _sound_stored_version(location: str) -> str:
    number = _number(Path(storage.name(location)))
    siblings = [storage.join(storage.parent(location), n) for n in storage.list_names(storage.parent(location))]
    older = sorted((s for s in siblings if (_number(Path(storage.name(s))) or 0) < (number or 0)),
                   key=lambda s: _number(Path(storage.name(s))) or 0, reverse=True)
    for candidate in [location, *older]:
        try:
            storage.fetch_folder(candidate)
            return candidate
        except (FileNotFoundError, storage.TornFolder) as exc:  # not whole: an older one will do; the store away
            # is raised as it is (the caller retries), never taken for a torn version
            log.warning("checkpoint %s cannot be fetched whole (%s); falling back to the version before it",
                        candidate, exc)
    raise InputError("no version of this student fetches whole", file=location)
