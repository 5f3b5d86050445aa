"""The driver's watch over a live run: budgets, actor failures, quiescence, and a progress line."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import ray

from pgkd.launch import forget, launch_in_pool
from pgkd.config import RunConfig
from pgkd.bus.archive import StreamArchive, archive_and_trim
from pgkd.bus.client import CHECKPOINTS, EXAMPLES, Bus
from pgkd.bus.control import CONTROL, TEACHER_AUDIT, TEACHERS_DONE, request_stop, stop_requested
from pgkd.bus.messages import ScaleRequest, Stop, TeacherAudit
from pgkd.bus.roster import actor_name, actor_names, pool_of, retire, retired, teacher_names, unretire
from pgkd.live_status import collect_status, progress_line, teacher_totals
from pgkd.report import audit_line
from pgkd.scaling import plan_scale
from pgkd.terminal_bar import TerminalBar

log = logging.getLogger("pgkd.driver")
PROGRESS_EVERY_S = 10.0
BAR_EVERY_S = 2.0
DRAIN_TIMEOUT_S = 120.0
DRAIN_SAY_EVERY_S = 5.0  # how often a stopping run says what it still waits for


class Watcher:
    def __init__(self, config: RunConfig, bus: Bus, launched, progress, archive: StreamArchive | None = None,
                 tracking=None, lease=None):
        self.config, self.bus, self.launched, self.archive = config, bus, launched, archive
        self.tracking = tracking  # a RunTracking (pgkd/track.py), or None
        self.lease = lease  # the driver's DriverLease: once another driver took the run, this one stops watching
        self.last_trim = 0.0
        self.started = time.time()
        self.bar = TerminalBar(config.loop.time_budget_s)
        self.progress = self.bar.write if self.bar.active and progress is print else progress
        self.finished: dict[str, str] = {}  # actor -> "ok" or the error
        self.last_progress = 0.0
        self.audit_said = False
        bus.ensure_group(CONTROL, "driver")

    def until_stopped(self) -> Stop:
        while True:
            if self.lease is not None and self.lease.lost.is_set():  # never a stop on the bus: the run goes on
                self.bar.close()
                return Stop(reason="error", detail="another driver took this run over")
            stop = stop_requested(self.bus)
            if stop is not None:
                self.bar.close()
                self.progress(f"stopping: {stop.reason} {stop.detail}".rstrip())
                return stop
            self._check_actors()
            self._apply_scale_requests()
            self._check_budgets()
            self._check_quiescent()
            self._trim_examples()
            if self.tracking is not None:
                self.tracking.poll(self.bus)
            self._announce_audit()
            self._report_progress()
            time.sleep(self.config.loop.poll_interval_s)

    def _trim_examples(self) -> None:
        """Keep Redis to what is in flight: acked example batches go to the run folder's archive, then out."""
        every = self.config.redis.archive_every_s
        if self.archive is None or not every or time.time() - self.last_trim < every:
            return
        self.last_trim = time.time()
        trimmed = archive_and_trim(self.bus, self.archive)
        if trimmed:
            log.debug("archived and trimmed %d acked example batches", trimmed)

    def _announce_audit(self) -> None:
        """Say once, on the terminal, how the teacher did on its audit and what the run decided from it."""
        if self.audit_said:
            return
        audit = self.bus.get_model(TEACHER_AUDIT, TeacherAudit)
        if audit is not None:
            self.audit_said = True
            self.progress(audit_line(audit.model_dump()))
            for decision in audit.decisions:
                self.progress(f"  {decision}")

    def _report_progress(self) -> None:
        since = time.time() - self.last_progress
        if since < (BAR_EVERY_S if self.bar.active else PROGRESS_EVERY_S):
            return
        status, elapsed = collect_status(self.bus, self.config), time.time() - self.started
        self.bar.update(elapsed, status)
        if int(elapsed // PROGRESS_EVERY_S) != int((elapsed - since) // PROGRESS_EVERY_S) or not self.bar.active:
            self.progress(progress_line(status, elapsed))
        self.last_progress = time.time()

    def _check_actors(self) -> None:
        pending = [ref for name, ref in self.launched.runs.items() if name not in self.finished]
        if not pending:
            return
        ready, _ = ray.wait(pending, num_returns=len(pending), timeout=0)
        by_ref = {ref: name for name, ref in self.launched.runs.items()}
        gone = retired(self.bus) if ready else set()
        for ref in ready:
            name = by_ref[ref]
            try:
                ray.get(ref)
                self.finished[name] = "ok"
            except Exception as exc:  # an actor died: say so, and stop if the run cannot go on
                self.finished[name] = f"{type(exc).__name__}: {str(exc)[-500:]}"
                log.error("actor %s failed: %s", name, self.finished[name])
                self.progress(f"actor {name} failed: {self.finished[name][:300]}{self._log_hint(name)}")
            if name in gone and self.finished[name] == "ok":  # scaled down and done: free its name and CPUs
                self._forget(name)
                self.progress(f"{name} finished and left the run (scaled down)")
        self._stop_if_crippled()

    def _log_hint(self, name: str) -> str:
        log_dir = self.launched.context.log_dir
        if not log_dir:
            return ""
        plain = Path(log_dir) / f"{name}.log"
        return f" (its log: {plain if plain.exists() else Path(log_dir) / f'{name}.jsonl'})"

    def _forget(self, name: str) -> None:
        forget(self.launched, name)
        self.finished.pop(name, None)

    def _live(self, prefix: str) -> list[str]:
        """Actors of the run still working: launched, not scaled down."""
        gone = retired(self.bus)
        return [n for n in self.launched.runs if n.startswith(prefix) and n not in gone]

    def _apply_scale_requests(self) -> None:
        """Carry out `pgkd scale`: start actors (a returning name resumes its own state) or retire them."""
        for entry_id, request in self.bus.read_group(CONTROL, "driver", "driver", ScaleRequest, count=10,
                                                     block_ms=None):
            live: dict[str, list[int]] = {}
            for name in self._live("teacher-") + self._live("student-"):
                pool, index = pool_of(name)
                live.setdefault(pool, []).append(index)
            plan = plan_scale(live, request)
            self.progress(f"scale request {request.model_dump(exclude={'created'})}: {plan.describe()}")
            for pool, index in plan.retire:
                retire(self.bus, actor_name(pool, index))
            for pool, index in plan.launch:
                name = actor_name(pool, index)
                if name in self.launched.handles:  # retired but not finished yet: replace it
                    self._forget(name)
                unretire(self.bus, name)
                launch_in_pool(self.launched, pool, index)
            self.bus.ack(CONTROL, "driver", [entry_id])

    def _stop_if_crippled(self) -> None:
        failed = {n for n, state in self.finished.items() if state != "ok"}
        students = self._live("student-")
        if "evaluator" in failed or (students and all(s in failed for s in students)):
            request_stop(self.bus, "error", f"actors failed: {sorted(failed)}")
        teachers = self._live("teacher-")
        if teachers and all(t in failed for t in teachers) and not self.bus.get_fields("flags").get(TEACHERS_DONE):
            request_stop(self.bus, "error", f"every teacher failed: {sorted(failed)}")

    def _check_budgets(self) -> None:
        loop = self.config.loop
        if time.time() - self.started >= loop.time_budget_s:
            request_stop(self.bus, "time_budget", f"{loop.time_budget_s:.0f}s elapsed")
        if not loop.max_generated:
            return
        # Only the teacher counters: the full status (every report) is for the progress line, not every poll.
        teachers = actor_names(self.bus, "teacher", teacher_names(self.config))
        generated = teacher_totals(self.bus, teachers)[0].get("generated", 0)
        if generated >= loop.max_generated:
            request_stop(self.bus, "max_generated", f"{generated:.0f} examples generated")

    def _check_quiescent(self) -> None:
        """All teachers done and every example trained on and every checkpoint scored: nothing more can happen."""
        teachers = self._live("teacher-")
        if not teachers or not all(self.finished.get(t) == "ok" for t in teachers):
            return  # with no live teacher (0 configured, or all scaled down) the run waits: `pgkd scale` may add one
        self.bus.set_fields("flags", {TEACHERS_DONE: 1})
        students = self._live("student-")
        lags = [self.bus.lag(EXAMPLES, f"student:{s}") for s in students] + [self.bus.lag(CHECKPOINTS, "evaluator")]
        states = [self.bus.get_fields(f"status:{a}").get("state") for a in students + ["evaluator"]]
        if all(lag == 0 for lag in lags) and all(state == "idle" for state in states):
            request_stop(self.bus, "teacher_done", "teachers finished and everything was trained and scored")

    def drain(self) -> None:
        """Give actors time to finish what they were doing (a training step, a scoring, an engine still loading)
        after stop, saying every DRAIN_SAY_EVERY_S which ones the run still waits for and what they are doing."""
        deadline = time.time() + DRAIN_TIMEOUT_S
        while (pending := {ref: name for name, ref in self.launched.runs.items() if name not in self.finished}):
            ready, _ = ray.wait(list(pending), num_returns=len(pending),
                                timeout=max(0.0, min(DRAIN_SAY_EVERY_S, deadline - time.time())))
            self._check_actors()
            waiting = [name for ref, name in pending.items() if ref not in ready]
            if not waiting or time.time() >= deadline:
                break
            states = [f"{name} ({self.bus.get_fields(f'status:{name}').get('state', 'starting')})" for name in waiting]
            self.progress(f"waiting for {', '.join(states)} to finish (at most {deadline - time.time():.0f} s "
                          f"more; a second Ctrl-C or SIGTERM exits now)")
