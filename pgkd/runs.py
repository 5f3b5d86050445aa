"""Where a run lives on disk (runs/<run_id>/) and how a later command finds its bus."""
from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pgkd.basics.atomic_files import write_atomic
from pgkd.basics.errors import InputError
from pgkd.basics.json_files import read_json_file
from pgkd.basics.settings import check_safe_name
from pgkd.basics import storage
from pgkd.basics.redact import HIDDEN, redact
from pgkd.basics.storage import StorageError
from pgkd.bus.config import check_redis_url, with_password
from pgkd.place import RunPlace

RUN_FILE = "run.json"


def new_run_id(name: str) -> str:
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def write_run_file(run_dir: Path, run_id: str, bus_url: str, embedded: bool, place=None,
                   password_env: str | None = None) -> None:
    """run.json holds the bus URL (with its password) for `pgkd status/stop`: readable by the owner only. In run
    storage by URI a copy without the password goes there too (it says which environment variable holds it)."""
    info = {"run_id": run_id, "bus_url": bus_url, "embedded_redis": embedded, "driver_pid": os.getpid(),
            "driver_host": socket.gethostname(), "started": time.time(), "password_env": password_env}
    write_private(run_dir / RUN_FILE, json.dumps(info, indent=2))
    if place is not None and place.remote:
        storage.write_bytes(place.stored(RUN_FILE), json.dumps(info | {"bus_url": redact(bus_url)}, indent=2))


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
    """The run's folder and its run.json, checked: a damaged file is named, never a traceback. A run in storage
    by URI: this machine's folder of it, with its config fetched, and the bus password from the environment."""
    if storage.is_uri(str(runs_dir)):
        return find_stored_run(RunPlace.of(str(runs_dir), run_id))
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


def run_bus(run_id: str, runs_dir: str | Path = "runs"):
    """(the run's Bus, its folder, its run.json) for the commands that talk to a run: status, stop, scale."""
    from pgkd.bus.client import Bus

    run_dir, info = find_run(run_id, runs_dir)
    return Bus(info["bus_url"], run_id, retry_seconds=3), run_dir, info


def find_stored_run(place: RunPlace) -> tuple[Path, dict]:
    try:
        info = place.read_json(RUN_FILE)
        place.fetch("config.yaml")
    except (OSError, StorageError) as exc:
        raise InputError(f"cannot read the run from storage: {exc}", file=place.stored(RUN_FILE)) from None
    local = place.local / RUN_FILE  # this machine drove it: its private run.json has the password
    if local.is_file():
        own = read_json_file(local)
        if isinstance(own, dict) and redact(str(own.get("bus_url", ""))) == info.get("bus_url"):
            info["bus_url"] = own["bus_url"]
    info["bus_url"] = bus_url_with_password(info, place.stored(RUN_FILE))
    return place.local, info


def bus_url_with_password(info: dict, where: str) -> str:
    """A stored run.json's bus URL with the password put back: from its password_env variable, or
    PGKD_REDIS_URL; a URL that had none is used as it is."""
    url = str(info.get("bus_url", ""))
    if HIDDEN not in url:
        return url
    variable = info.get("password_env")
    if variable and os.environ.get(variable):
        return with_password(without_credentials(url), os.environ[variable], variable)
    given = os.environ.get("PGKD_REDIS_URL") or ""
    if given and same_server(given, url):  # never another Redis: a resume there would start the run over
        return given
    raise InputError(f"the run's Redis password is not stored with the run: set {variable or 'PGKD_REDIS_URL'} "
                     f"in the environment (PGKD_REDIS_URL must name the run's own server, {redact(url)})",
                     file=where, field="bus_url")


def same_server(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.hostname, pa.port or 6379, pa.path.strip("/") or "0") == (pb.hostname, pb.port or 6379,
                                                                         pb.path.strip("/") or "0")


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, parts.fragment))


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
