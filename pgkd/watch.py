"""The driver's watch over a live run: budgets, actor failures, quiescence, and a progress line."""
from __future__ import annotations

import logging
import time

import ray

from pgkd.bus import CHECKPOINTS, EXAMPLES, Bus
from pgkd.config import RunConfig
from pgkd.control import TEACHERS_DONE, request_stop, stop_requested
from actors.launch import teacher_names
from pgkd.live_status import collect_status, progress_line, teacher_totals
from pgkd.messages import Stop

log = logging.getLogger("pgkd.driver")
PROGRESS_EVERY_S = 10.0
DRAIN_TIMEOUT_S = 120.0


class Watcher:
    def __init__(self, config: RunConfig, bus: Bus, launched, progress):
        self.config, self.bus, self.launched, self.progress = config, bus, launched, progress
        self.started = time.time()
        self.finished: dict[str, str] = {}  # actor -> "ok" or the error
        self.last_progress = 0.0

    def until_stopped(self) -> Stop:
        while True:
            stop = stop_requested(self.bus)
            if stop is not None:
                self.progress(f"stopping: {stop.reason} {stop.detail}".rstrip())
                return stop
            self._check_actors()
            self._check_budgets()
            self._check_quiescent()
            if time.time() - self.last_progress >= PROGRESS_EVERY_S:
                self.last_progress = time.time()
                self.progress(progress_line(collect_status(self.bus, self.config), time.time() - self.started))
            time.sleep(self.config.loop.poll_interval_s)

    def _check_actors(self) -> None:
        pending = [ref for name, ref in self.launched.runs.items() if name not in self.finished]
        if not pending:
            return
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        by_ref = {ref: name for name, ref in self.launched.runs.items()}
        for ref in ready:
            name = by_ref[ref]
            try:
                ray.get(ref)
                self.finished[name] = "ok"
            except Exception as exc:  # an actor died: say so, and stop if the run cannot go on
                self.finished[name] = f"{type(exc).__name__}: {str(exc)[-500:]}"
                log.error("actor %s failed: %s", name, self.finished[name])
                self.progress(f"actor {name} failed: {self.finished[name][:300]}")
        self._stop_if_crippled()

    def _stop_if_crippled(self) -> None:
        failed = {n for n, state in self.finished.items() if state != "ok"}
        students = [n for n in self.launched.runs if n.startswith("student-")]
        if "evaluator" in failed or (students and all(s in failed for s in students)):
            request_stop(self.bus, "error", f"actors failed: {sorted(failed)}")
        teachers = [n for n in self.launched.runs if n.startswith("teacher-")]
        if teachers and all(t in failed for t in teachers) and not self.bus.get_fields("flags").get(TEACHERS_DONE):
            request_stop(self.bus, "error", f"every teacher failed: {sorted(failed)}")

    def _check_budgets(self) -> None:
        loop = self.config.loop
        if time.time() - self.started >= loop.time_budget_s:
            request_stop(self.bus, "time_budget", f"{loop.time_budget_s:.0f}s elapsed")
        if not loop.max_generated:
            return
        # Only the teacher counters: the full status (every report) is for the progress line, not every poll.
        generated = teacher_totals(self.bus, teacher_names(self.config))[0].get("generated", 0)
        if generated >= loop.max_generated:
            request_stop(self.bus, "max_generated", f"{generated:.0f} examples generated")

    def _check_quiescent(self) -> None:
        """All teachers done and every example trained on and every checkpoint scored: nothing more can happen."""
        teachers = [n for n in self.launched.runs if n.startswith("teacher-")]
        if not teachers or not all(self.finished.get(t) == "ok" for t in teachers):
            return
        self.bus.set_fields("flags", {TEACHERS_DONE: 1})
        students = [n for n in self.launched.runs if n.startswith("student-")]
        lags = [self.bus.lag(EXAMPLES, f"student:{s}") for s in students] + [self.bus.lag(CHECKPOINTS, "evaluator")]
        states = [self.bus.get_fields(f"status:{a}").get("state") for a in students + ["evaluator"]]
        if all(lag == 0 for lag in lags) and all(state == "idle" for state in states):
            request_stop(self.bus, "teacher_done", "teachers finished and everything was trained and scored")

    def drain(self) -> None:
        """Give actors time to finish what they were doing (a training step, a scoring) after stop."""
        pending = [ref for name, ref in self.launched.runs.items() if name not in self.finished]
        if pending:
            ray.wait(pending, num_returns=len(pending), timeout=DRAIN_TIMEOUT_S)
        self._check_actors()
