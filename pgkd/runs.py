"""Where a run lives on disk (runs/<run_id>/) and how a later command finds its bus."""
from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from pgkd.errors import InputError

RUN_FILE = "run.json"


def new_run_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def write_run_file(run_dir: Path, run_id: str, bus_url: str, embedded: bool) -> None:
    """run.json holds the bus URL (with its password) for `pgkd status/stop`: readable by the owner only."""
    path = run_dir / RUN_FILE
    path.write_text(json.dumps({"run_id": run_id, "bus_url": bus_url, "embedded_redis": embedded,
                                "driver_pid": os.getpid(), "started": time.time()}, indent=2))
    path.chmod(0o600)


def find_run(run_id: str, runs_dir: str | Path = "runs") -> tuple[Path, dict]:
    run_dir = Path(runs_dir) / run_id
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise InputError(f"no run '{run_id}' here (looked for {path})", file=str(path))
    return run_dir, json.loads(path.read_text())
