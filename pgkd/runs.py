"""Where a run lives on disk (runs/<run_id>/) and how a later command finds its bus."""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path

from pgkd.basics.atomic_files import write_atomic
from pgkd.basics.errors import InputError
from pgkd.basics.json_files import read_json_file
from pgkd.basics.settings import check_safe_name
from pgkd.bus.config import check_redis_url

RUN_FILE = "run.json"


def new_run_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def write_run_file(run_dir: Path, run_id: str, bus_url: str, embedded: bool) -> None:
    """run.json holds the bus URL (with its password) for `pgkd status/stop`: readable by the owner only."""
    text = json.dumps({"run_id": run_id, "bus_url": bus_url, "embedded_redis": embedded, "driver_pid": os.getpid(),
                       "driver_host": socket.gethostname(), "started": time.time()}, indent=2)
    write_private(run_dir / RUN_FILE, text)


def write_private(path: Path, text: str) -> None:
    """Replace a file whole (a crash leaves the old one: run.json holds the only copy of the embedded Redis's
    password), owner-only from its creation (never world-readable, not even for a moment)."""
    write_atomic(path, text, private=True)


def run_folder(run_id: str, runs_dir: str | Path = "runs") -> Path:
    """runs_dir/run_id, refused unless run_id is a safe name and runs_dir a folder."""
    try:
        check_safe_name(run_id)
    except ValueError as exc:
        raise InputError(str(exc), field="run_id") from None
    if not Path(runs_dir).is_dir():
        raise InputError("not a folder" if Path(runs_dir).exists() else "no such folder", file=str(runs_dir),
                         field="--runs-dir")
    return Path(runs_dir) / run_id


def find_run(run_id: str, runs_dir: str | Path = "runs") -> tuple[Path, dict]:
    """The run's folder and its run.json, checked: a damaged file is named, never a traceback."""
    run_dir = run_folder(run_id, runs_dir)
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise InputError(f"no run '{run_id}' here (looked for {path})", file=str(path))
    info = read_json_file(path)
    if not isinstance(info, dict) or not isinstance(info.get("bus_url"), str):
        raise InputError("damaged: expected an object with the run's bus_url", file=str(path), field="bus_url")
    try:
        check_redis_url(info["bus_url"])
    except ValueError as exc:
        raise InputError(f"damaged: {exc}", file=str(path), field="bus_url") from None
    return run_dir, info


def driver_alive(info: dict) -> bool:
    """Whether the driver that wrote run.json still runs (checkable on its own host only)."""
    pid = info.get("driver_pid")
    if not pid or info.get("driver_host", socket.gethostname()) != socket.gethostname() or pid == os.getpid():
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"pgkd" in cmdline


def refuse_if_live(run_id: str, info: dict) -> None:
    """Two drivers on one run would launch every actor twice."""
    if driver_alive(info):
        raise InputError(f"run '{run_id}' is still driven by process {info['driver_pid']}; "
                         f"`pgkd stop {run_id}` it (or wait for it) before resuming", field="run_id")
