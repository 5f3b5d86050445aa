"""The unlabelled pool as files of any size: JSONL or Parquet files, or folders of them (`dataset.pool`).

Nothing here holds the pool in memory. The files are cut into shards of about `rows` lines (JSONL: byte ranges
that start on a line, found by counting newlines; Parquet: runs of row groups), and a shard is read as a stream
of rows. Every text gets a stable id, a hash of its normalized text, so claims and the labelled set survive
restarts and resumes, and a repeated text is one id. A bad row is counted and named (file and line), never fatal.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from pgkd.basics import storage
from pgkd.basics.dataset import normalize_text, text_problem
from pgkd.basics.errors import InputError

POOL_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
SCAN_BYTES = 8 << 20  # newlines are counted in chunks of this size: fast, and memory stays flat


def text_id(text: str) -> str:
    """A pool text's id: the same for the same normalized text in every file, run and restart."""
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=8).hexdigest()


@dataclass(frozen=True)
class PoolShard:
    """One piece of one pool file: JSONL bytes [start, end) whose first line is first_line, or Parquet row groups
    [start, end) whose first row is first_line."""

    file: str
    kind: str  # jsonl | parquet
    start: int
    end: int
    first_line: int
    rows: int  # lines (JSONL, blank and bad ones included) or rows (Parquet)

    def as_dict(self) -> dict:
        return asdict(self)


def pool_files(paths: list[Path]) -> list[Path]:
    """The pool's files in a stable order: each path a file, or a folder whose JSONL and Parquet files are taken
    (sorted, not recursing). Refuses a missing path, an unknown file type or a folder with no pool file."""
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in POOL_SUFFIXES)
            if not found:
                raise InputError("folder holds no .jsonl or .parquet file", file=str(path), field="dataset.pool")
            files += found
        elif path.is_file():
            if path.suffix.lower() not in POOL_SUFFIXES:
                raise InputError(f"unknown pool file type '{path.suffix}' (use .jsonl or .parquet)", file=str(path),
                                 field="dataset.pool")
            files.append(path)
        else:
            raise InputError("pool file or folder not found", file=str(path), field="dataset.pool")
    return files


def plan_shards(files: list[Path], rows: int) -> list[PoolShard]:
    """Shards of about `rows` rows over all files. Refuses a pool with no row at all."""
    shards = []
    for path in files:
        kind = POOL_SUFFIXES[path.suffix.lower()]
        shards += _jsonl_shards(path, rows) if kind == "jsonl" else _parquet_shards(path, rows)
    if not shards:
        raise InputError("the pool is empty: no row in " + ", ".join(str(f) for f in files[:3]),
                         file=str(files[0]) if files else None, field="dataset.pool")
    return shards


def _jsonl_shards(path: Path, rows: int) -> list[PoolShard]:
    """Byte ranges of `rows` lines each, found by counting newlines chunk by chunk; blank-only files give none."""
    shards, start, first_line, line, offset, blank, ends_line = [], 0, 1, 1, 0, True, True
    with path.open("rb") as handle:
        while chunk := handle.read(SCAN_BYTES):
            blank, ends_line = blank and not chunk.strip(), chunk.endswith(b"\n")
            position = 0
            while True:
                cut = chunk.find(b"\n", position)
                if cut < 0:
                    break
                position, line = cut + 1, line + 1
                if line - first_line == rows:
                    shards.append(PoolShard(str(path), "jsonl", start, offset + position, first_line, rows))
                    start, first_line = offset + position, line
            offset += len(chunk)
    if offset > start:
        shards.append(PoolShard(str(path), "jsonl", start, offset, first_line, line - first_line + (not ends_line)))
    return [] if blank else shards


def _parquet_shards(path: Path, rows: int) -> list[PoolShard]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"not a readable Parquet file: {exc}", file=str(path), field="dataset.pool") from None
    if "text" not in meta.schema.names:
        raise InputError(f"no 'text' column (columns: {meta.schema.names[:10]})", file=str(path), field="dataset.pool")
    shards, group, first_row = [], 0, 1
    while group < meta.num_row_groups:
        end, count = group, 0
        while end < meta.num_row_groups and (count == 0 or count + meta.row_group(end).num_rows <= rows):
            count += meta.row_group(end).num_rows
            end += 1
        if count:
            shards.append(PoolShard(str(path), "parquet", group, end, first_row, count))
        group, first_row = end, first_row + count
    return shards


def local_copy(file: str) -> str:
    """A pool file in run storage by URI is read from this node's copy of it (fetched once)."""
    return str(storage.fetch_file(file)) if storage.is_uri(file) else file


def read_shard(shard: PoolShard, skip_ids: frozenset[str] = frozenset()) -> Iterator[dict]:
    """Rows {"id", "text", "bad"} of one shard. A bad row has id "" and `bad` = "file:line: why"; a text whose
    id is in skip_ids (a seed, validation or test text) has id "" and bad "" (left out, not an error)."""
    texts = _jsonl_texts(shard) if shard.kind == "jsonl" else _parquet_texts(shard)
    for line, text, problem in texts:
        if problem:
            yield {"id": "", "text": "", "bad": f"{shard.file}:{line}: {problem}"}
            continue
        key = text_id(text)
        yield {"id": "" if key in skip_ids else key, "text": text.strip(), "bad": ""}


def _jsonl_texts(shard: PoolShard) -> Iterator[tuple[int, str, str]]:
    with open(local_copy(shard.file), "rb") as handle:
        handle.seek(shard.start)
        line = shard.first_line
        while handle.tell() < shard.end:
            raw = handle.readline()
            if not raw:
                break
            if raw.strip():
                text, problem = _text_of_line(raw)
                yield line, text, problem
            line += 1


def _text_of_line(raw: bytes) -> tuple[str, str]:
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "", "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return "", f"not valid JSON: {exc.msg}"
    if not isinstance(row, dict):
        return "", "expected an object {\"text\": ...}"
    return _checked_text(row.get("text"))


def _checked_text(text) -> tuple[str, str]:
    problem = text_problem(text)
    return ("", problem) if problem else (text, "")


def _parquet_texts(shard: PoolShard) -> Iterator[tuple[int, str, str]]:
    import pyarrow.parquet as pq

    row = shard.first_line
    for batch in pq.ParquetFile(local_copy(shard.file)).iter_batches(row_groups=range(shard.start, shard.end), columns=["text"]):
        for value in batch.column(0).to_pylist():
            text, problem = _checked_text(value)
            yield row, text, problem
            row += 1
