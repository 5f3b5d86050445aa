"""The examples stream's archive: entries every consumer group has acked are appended to a file in the run folder
(runs/<id>/data/) and trimmed from Redis, so Redis holds what is in flight, not the run's history, however long
the run. Whoever needs the whole history (a restarted or newly added student, the final report) reads the
archive for what was trimmed and the stream for the rest.

Trimming never takes an entry some group has not acked: not one pending, not one past a group's last-delivered
id. A group created later (a student scaled in) starts at id 0, which stops trimming until it has caught up, so
it can read what was trimmed before it existed from the archive without a race.

A writer killed mid-append leaves a torn last line. Nothing was trimmed for it (trimming follows the fsync), so
readers ignore it and the next append cuts it off first and writes those entries again.

Run storage by URI (object storage has no append) keeps the archive as segments instead: each archiving step puts
one whole object named by its first entry id (SegmentArchive); readers list and read them in id order.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TypeVar

import redis
from pydantic import BaseModel

from pgkd.basics import storage
from pgkd.bus.client import EXAMPLES, Bus

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
ARCHIVE_FILE = "examples.stream.jsonl"


def stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def id_text(parts: tuple[int, int]) -> str:
    return f"{parts[0]}-{parts[1]}"


class StreamArchive:
    """Append-only lines {"id": entry id, "json": the entry's message}, in stream order."""

    def __init__(self, folder: str | Path, name: str = ARCHIVE_FILE):
        self.path = Path(folder) / name
        self._last: str | None = None

    def complete_lines(self) -> list[bytes]:
        """The file's lines up to its last newline; a torn tail (a writer killed mid-line) is left out."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        return data[:data.rfind(b"\n") + 1].splitlines()

    def last_id(self) -> str | None:
        if self._last is None:
            lines = self.complete_lines()
            self._last = json.loads(lines[-1])["id"] if lines else None
        return self._last

    def repair(self) -> int:
        """Cut a torn tail off the file (bytes after its last newline); returns how many bytes went."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return 0
        with self.path.open("r+b") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) == b"\n":  # the usual case, without reading a long run's history
                return 0
            handle.seek(0)
            data = handle.read()
            keep = data.rfind(b"\n") + 1
            if keep == len(data):
                return 0
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("%s: cut a torn last line (%d bytes) left by a writer that stopped mid-append; its entries "
                    "are still in Redis and are archived again", self.path, len(data) - keep)
        return len(data) - keep

    def append(self, entries: list[tuple[str, dict]]) -> None:
        """Entries as XRANGE gives them; written whole and fsynced before anything is trimmed."""
        if not entries:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repair()
        blob = "".join(json.dumps({"id": entry_id, "json": fields.get("json", "")}) + "\n"
                       for entry_id, fields in entries).encode()
        with self.path.open("ab") as out:
            out.write(blob)
            out.flush()
            os.fsync(out.fileno())
        self._last = entries[-1][0]

    def read(self, model: type[M], before: str | None = None) -> list[tuple[str, M]]:
        """Archived entries (id, message), those older than `before` only when given."""
        limit = stream_id(before) if before else None
        found = []
        for line in self.complete_lines():
            row = json.loads(line)
            if limit is not None and stream_id(row["id"]) >= limit:
                break
            found.append((row["id"], model.model_validate_json(row["json"])))
        return found


class SegmentArchive:
    """The archive in run storage by URI: data/examples.stream/<first id>.jsonl, each segment written whole
    (an object store puts an object at once: no torn tail), the same lines as StreamArchive's."""

    def __init__(self, folder: str, name: str = ARCHIVE_FILE.removesuffix(".jsonl")):
        self.location = storage.join(folder, name)
        self._last: str | None = None

    def segments(self) -> list[str]:
        names = [n for n in storage.list_names(self.location) if n.endswith(".jsonl")]
        return sorted(names, key=lambda n: stream_id(n.removesuffix(".jsonl")))

    def _lines(self, segment: str) -> list[bytes]:
        return storage.read_bytes(storage.join(self.location, segment)).splitlines()

    def last_id(self) -> str | None:
        if self._last is None:
            segments = self.segments()
            self._last = json.loads(self._lines(segments[-1])[-1])["id"] if segments else None
        return self._last

    def append(self, entries: list[tuple[str, dict]]) -> None:
        if not entries:
            return
        blob = "".join(json.dumps({"id": entry_id, "json": fields.get("json", "")}) + "\n"
                       for entry_id, fields in entries)
        storage.write_bytes(storage.join(self.location, f"{entries[0][0]}.jsonl"), blob)
        self._last = entries[-1][0]

    def read(self, model: type[M], before: str | None = None) -> list[tuple[str, M]]:
        limit = stream_id(before) if before else None
        found = []
        for segment in self.segments():
            for line in self._lines(segment):
                row = json.loads(line)
                if limit is not None and stream_id(row["id"]) >= limit:
                    return found
                found.append((row["id"], model.model_validate_json(row["json"])))
        return found


def open_archive(folder: str | Path) -> StreamArchive | SegmentArchive:
    """The archive of a run's data folder: a file in a local folder, segments in run storage by URI."""
    return SegmentArchive(str(folder)) if storage.is_uri(str(folder)) else StreamArchive(folder)


def first_id(bus: Bus, stream: str = EXAMPLES) -> str | None:
    """The oldest entry still in Redis; None when the stream is empty."""
    entries = bus.call(bus.client.xrange, bus.key(stream), "-", "+", count=1)
    return entries[0][0] if entries else None


def acked_floor(bus: Bus, stream: str = EXAMPLES) -> tuple[int, int] | None:
    """The oldest id some consumer group still needs (pending, or not delivered yet); None without groups."""
    try:
        groups = bus.call(bus.client.xinfo_groups, bus.key(stream))
    except redis.ResponseError:  # no stream yet
        return None
    if not groups:
        return None
    floor = None
    for group in groups:
        last = stream_id(group["last-delivered-id"])
        needed = (last[0], last[1] + 1)
        if int(group.get("pending") or 0):
            # read apart from XINFO: the group may have acked everything in between (min is then None)
            summary = bus.call(bus.client.xpending, bus.key(stream), group["name"])
            if summary.get("min"):
                needed = min(needed, stream_id(summary["min"]))
        floor = needed if floor is None else min(floor, needed)
    return floor


def archive_and_trim(bus: Bus, archive: StreamArchive | SegmentArchive, stream: str = EXAMPLES) -> int:
    """Append the entries the archive lacks, then trim from Redis those every group acked. Returns how many."""
    last = archive.last_id()
    archive.append(bus.call(bus.client.xrange, bus.key(stream), f"({last}" if last else "-", "+"))
    floor, archived = acked_floor(bus, stream), archive.last_id()
    if floor is None or archived is None:
        return 0
    done = stream_id(archived)
    limit = min(floor, (done[0], done[1] + 1))
    return int(bus.call(bus.client.xtrim, bus.key(stream), minid=id_text(limit), approximate=False))


def trimmed_history(archive: StreamArchive, model: type[M], before: str | None) -> list[M]:
    """What was trimmed from the stream: archived entries older than `before` (the stream's first id, read by the
    caller before this call), all of them when the stream was empty."""
    return [message for _, message in archive.read(model, before=before)]


def full_history(bus: Bus, archive: StreamArchive, model: type[M], stream: str = EXAMPLES) -> list[M]:
    """Every entry the stream ever had, in order: the trimmed ones from the archive, the rest from Redis."""
    entries = bus.call(bus.client.xrange, bus.key(stream))
    before = entries[0][0] if entries else None
    kept = [model.model_validate_json(fields["json"]) for _, fields in entries if "json" in fields]
    return trimmed_history(archive, model, before) + kept
