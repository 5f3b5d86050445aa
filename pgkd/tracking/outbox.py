"""Calls to a tracking server, made in order on one background thread so the driver never waits on the network.
Each call is tried `attempts` times with a doubling wait; when one still fails, tracking is given up for the run:
one warning, the error kept for the report, every later call dropped. The run itself never notices."""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

log = logging.getLogger("pgkd.tracking")
DONE = object()


class Outbox:
    def __init__(self, attempts: int, retry_wait_s: float, on_lost: Callable[[str], None] = lambda why: None):
        self.attempts, self.retry_wait_s, self.on_lost = attempts, retry_wait_s, on_lost
        self.lost: str | None = None  # why tracking was given up; None while it works
        self.sent = 0
        self._calls: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="pgkd-tracking", daemon=True)
        self._thread.start()

    def put(self, what: str, call: Callable[[], object]) -> None:
        """Queue a call (named for the warning); dropped once tracking is lost."""
        if self.lost is None:
            self._calls.put((what, call))

    def flush(self, timeout_s: float) -> bool:
        """Wait until every queued call is made or dropped; False when the wait ran out."""
        done = threading.Event()
        self._calls.put(("flush", done.set))
        return done.wait(timeout_s)

    def close(self, timeout_s: float) -> bool:
        flushed = self.flush(timeout_s)
        self._calls.put(DONE)
        return flushed

    def _work(self) -> None:
        while (item := self._calls.get()) is not DONE:
            what, call = item
            if what == "flush":
                call()
            elif self.lost is None:
                self._make(what, call)

    def _make(self, what: str, call: Callable[[], object]) -> None:
        wait = self.retry_wait_s
        for attempt in range(1, self.attempts + 1):
            try:
                call()
                self.sent += 1
                return
            except Exception as exc:  # whatever the client raises: the run must not notice
                error = short_error(exc)
                log.info("tracking: %s failed (try %d of %d): %s", what, attempt, self.attempts, error)
                if attempt < self.attempts:
                    time.sleep(wait)
                    wait *= 2
        self.lost = f"{what} failed {self.attempts} times: {error}"
        log.warning("tracking given up: %s", self.lost)
        self.on_lost(self.lost)


def short_error(exc: Exception, limit: int = 200) -> str:
    """One line for a terminal and a report: clients wrap the cause in long messages (MLflow repeats the URL,
    the request and urllib3's whole retry story)."""
    text = " ".join(str(exc).split())
    for cause in ("Connection refused", "Name or service not known", "timed out", "Read timed out"):
        if cause in text:
            return f"{type(exc).__name__}: {cause}"
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[:limit - 1] + "…"
