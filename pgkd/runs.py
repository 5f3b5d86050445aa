"""Where a run lives on disk (runs/<run_id>/) and how a later command finds its bus."""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path

from basics.errors import InputError

RUN_FILE = "run.json"


def new_run_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def write_run_file(run_dir: Path, run_id: str, bus_url: str, embedded: bool) -> None:
    """run.json holds the bus URL (with its password) for `pgkd status/stop`: readable by the owner only."""
    path = run_dir / RUN_FILE
    path.write_text(json.dumps({"run_id": run_id, "bus_url": bus_url, "embedded_redis": embedded,
                                "driver_pid": os.getpid(), "driver_host": socket.gethostname(),
                                "started": time.time()}, indent=2))
    path.chmod(0o600)


def find_run(run_id: str, runs_dir: str | Path = "runs") -> tuple[Path, dict]:
    run_dir = Path(runs_dir) / run_id
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise InputError(f"no run '{run_id}' here (looked for {path})", file=str(path))
    return run_dir, json.loads(path.read_text())


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
