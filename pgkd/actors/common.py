"""What every actor shell shares: logging (a plain log file per actor, or Ray's stream with --verbose, plus a JSON-lines
file per actor), its bus, thread budget."""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from pgkd.basics.logs import quiet_http_clients
from pgkd.bus.client import Bus
from pgkd.bus.control import set_status
from pgkd.cluster.placement import set_thread_budget


class JsonLines(logging.Formatter):
    """One JSON object per record: easy to grep, load with pandas, or ship to a log store."""

    def __init__(self, actor: str):
        super().__init__()
        self.actor = actor

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "time": time.strftime("%H:%M:%S", time.localtime(record.created)),
                 "actor": self.actor, "pid": record.process, "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def output_to_file(name: str, log_dir: str) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2, inherited by vLLM's engine processes)
    at <log_dir>/<name>.log, appended to: Ray no longer sees them, so the driver's terminal stays pgkd's."""
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    target = os.open(Path(log_dir) / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)


def setup_logging(name: str, log_dir: str | None) -> None:
    if log_dir and os.environ.get("PGKD_ACTOR_OUTPUT", "file") == "file":
        output_to_file(name, log_dir)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    quiet_http_clients()
    if log_dir:  # appended to: a restarted actor continues its own file
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(log_dir) / f"{name}.jsonl")
        handler.setFormatter(JsonLines(name))
        logging.getLogger().addHandler(handler)


def ray_node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def setup_actor(name: str, bus_url: str, run_id: str, threads: int) -> Bus:
    setup_logging(name, os.environ.get("PGKD_LOG_DIR"))
    set_thread_budget(threads)
    bus = Bus(bus_url, run_id, retry_seconds=float(os.environ.get("PGKD_BUS_RETRY_S", "120")))
    bus.ping()
    set_status(bus, name, pid=os.getpid(), host=socket.gethostname(), node=ray_node_id(),
               started=time.time())  # for operators: where it runs now (a restart elsewhere changes it)
    return bus
