"""The driver's side of tracking (pgkd/tracking/): what a run sends to the tracking server, and when.

While the run goes: its params and tags once, then every tracking.every_s each newly scored version (step: the
version; its timestamp: the message's own, so a resumed run sending its history again doubles nothing), the
teacher's totals when they moved (step: seconds since the tracking run began), the audit once. After the report:
best-student figures, config, curve, the report itself and the student as a servable model. Everything goes
through the outbox's thread: a slow or lost server never holds the run, and the report says what became of it.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pgkd.basics.redact import redact_urls
from pgkd.bus.client import CHECKPOINTS, REPORTS, SELECTION, Bus
from pgkd.bus.control import TEACHER_AUDIT
from pgkd.bus.messages import Checkpoint, EvalReport, SelectionScore, TeacherAudit
from pgkd.bus.roster import actor_names, teacher_names
from pgkd.config import RunConfig, dump_config
from pgkd.live_status import teacher_totals
from pgkd.teacher.accounting import teacher_accounting
from pgkd.teacher.config import teacher_kind
from pgkd.tracking.base import Point, make_tracker
from pgkd.tracking.outbox import Outbox

log = logging.getLogger("pgkd.tracking")
PARAM_CHARS = 6000  # MLflow's limit on a param's value
FINISH_TIMEOUT_S = 180.0


def flat_params(config: RunConfig) -> dict[str, str]:
    """The resolved config as dotted keys (students.0.kind), URLs redacted, values as text."""
    flat: dict[str, str] = {}

    def walk(value, key: str) -> None:
        if isinstance(value, dict) and value:
            for name, item in value.items():
                walk(item, f"{key}.{name}" if key else str(name))
        elif isinstance(value, list) and value and any(isinstance(item, (dict, list)) for item in value):
            for index, item in enumerate(value):
                walk(item, f"{key}.{index}")
        else:
            flat[key] = (value if isinstance(value, str) else json.dumps(value))[:PARAM_CHARS]

    walk(redact_urls(dump_config(config)), "")
    return flat


def run_tags(config: RunConfig) -> dict[str, str]:
    teacher = dump_config(config)["teacher"]
    simulated = teacher_kind(config.teacher).report_note(config.teacher) is not None
    return {"pgkd.dataset": Path(config.dataset.path).name, "pgkd.teacher_backend": config.teacher.backend,
            "pgkd.teacher_model": str(teacher.get("model") or teacher.get("served_model") or "none"),
            "pgkd.simulated_teacher": str(simulated).lower(), "pgkd.students": ", ".join(s.name for s in config.students)}


def version_points(bus: Bus, seen: set[str]) -> list[Point]:
    """Points of every version scored, trained or selected since the last call (`seen` remembers them)."""
    points = []
    for stream, model in ((REPORTS, EvalReport), (SELECTION, SelectionScore), (CHECKPOINTS, Checkpoint)):
        for message in bus.read_all(stream, model):
            mark = f"{stream}:{message.student}@v{message.version}"
            if mark in seen:
                continue
            seen.add(mark)
            at = int(message.created * 1000)
            for name, value in version_figures(message).items():
                if value is not None:
                    points.append(Point(f"{message.student}/{name}", float(value), message.version, at))
    return points


def version_figures(message) -> dict[str, float | None]:
    if isinstance(message, EvalReport):
        return {"steering_macro_f1": message.macro_f1, "steering_accuracy": message.accuracy,
                "examples_seen": message.examples_seen, "generated_seen": message.generated_seen}
    if isinstance(message, SelectionScore):
        return {"selection_macro_f1": message.macro_f1, "selection_accuracy": message.accuracy}
    return {"train_seconds": message.train_seconds, "train_loss": message.train_loss}


class RunTracking:
    def __init__(self, config: RunConfig, run_id: str, progress):
        self.config, self.settings, self.progress = config, config.tracking, progress
        self.enabled = self.settings.enabled
        self.seen: set[str] = set()
        self.last_poll = 0.0
        self.last_totals: dict = {}
        self.audit_sent = False
        if not self.enabled:
            return
        self.tracker = make_tracker(self.settings, config.runs_dir)
        self.outbox = Outbox(self.settings.attempts, self.settings.retry_wait_s, on_lost=self._say_lost)
        self.outbox.put("opening the tracking run", lambda: self.tracker.open(run_id, run_tags(config)))
        self.outbox.put("sending the config as params", self._send_params)

    def _say_lost(self, why: str) -> None:
        self.progress(f"tracking: given up on {self.tracker.where()['uri']} ({why}); the run goes on without it")

    def _send_params(self) -> None:
        changed = self.tracker.log_params(flat_params(self.config))
        if changed:
            log.warning("tracking: params changed since the run's first session (kept as they were, listed in "
                        "the tag pgkd.params_changed_on_resume): %s", ", ".join(changed))

    def poll(self, bus: Bus, force: bool = False) -> None:
        """Queue what is new; at most every tracking.every_s unless forced. Never raises: tracking is a guest."""
        if not self.enabled or self.outbox.lost or (not force and time.time() - self.last_poll < self.settings.every_s):
            return
        self.last_poll = time.time()
        try:
            self._queue_new(bus)
        except Exception as exc:  # reading our own bus failed (an outage it rides out elsewhere): next time
            log.info("tracking: could not read the run's state this time: %s", exc)

    def _queue_new(self, bus: Bus) -> None:
        points = version_points(bus, self.seen)
        if points:
            self.outbox.put(f"sending {len(points)} version figures", lambda: self.tracker.log_points(points))
        totals, _ = teacher_totals(bus, actor_names(bus, "teacher", teacher_names(self.config)))
        if totals and totals != self.last_totals:
            self.last_totals = dict(totals)
            figures = totals | {k: v for k, v in teacher_accounting(totals, self.config.teacher).items()
                                if k in ("cost_usd", "kept_ratio")}
            now = time.time()
            self.outbox.put("sending the teacher's totals", lambda: self.tracker.log_points(
                [Point(f"teacher/{k}", float(v), int(now - self.tracker.started_ms / 1000), int(now * 1000))
                 for k, v in figures.items() if v is not None]))
        if not self.audit_sent and (audit := bus.get_model(TEACHER_AUDIT, TeacherAudit)) is not None:
            self.audit_sent = True
            self.outbox.put("sending the teacher audit", lambda: self._send_audit(audit))

    def _send_audit(self, audit: TeacherAudit) -> None:
        at = self.tracker.started_ms  # written once per run: the same point whichever session sends it
        figures = audit.model_dump(include={"accuracy", "macro_f1", "ece", "kept_share", "threshold",
                                            "precision_at_threshold", "student_accuracy", "student_macro_f1",
                                            "min_confidence", "kd_alpha"})
        self.tracker.log_points([Point(f"audit/{k}", float(v), 0, at) for k, v in figures.items() if v is not None])
        self.tracker.log_json(audit.model_dump(), "audit.json")

    def finish(self, bus: Bus, report: dict, run_dir: Path, example: list[str], rewrite_report) -> None:
        """After the report: the last figures, the files and the student, then the report with a tracking block
        saying where the run is (or why it is not), written again and sent last."""
        if not self.enabled:
            return
        self.poll(bus, force=True)
        best = report.get("best_student")
        if best:
            self.outbox.put("sending the best student's figures", lambda: self._send_best(best))
            self.outbox.put("logging the student as a model", lambda: self.tracker.log_student(
                run_dir / "best_student", example, self.settings.register_as))
        self.outbox.put("sending config and curve", lambda: self.tracker.log_files(
            [run_dir / "config.yaml", run_dir / "learning_curve.png", run_dir / "metrics.jsonl"]))
        flushed = self.outbox.flush(FINISH_TIMEOUT_S)
        report["tracking"] = self.block(flushed)
        rewrite_report(report)
        self.outbox.put("sending the report", lambda: self.tracker.log_files([run_dir / "report.json",
                                                                               run_dir / "report.md"]))
        self.outbox.put("closing the tracking run", lambda: self.tracker.close(ok=report["tracking"]["state"] == "ok"))
        if not self.outbox.close(FINISH_TIMEOUT_S) or (self.outbox.lost and report["tracking"]["state"] == "ok"):
            report["tracking"] = self.block(False)
            rewrite_report(report)
        where = report["tracking"]
        if where["state"] == "ok":
            self.progress(f"tracking: {where['backend']} run {where['run_id']} at {where['uri']}"
                          + (f", student {where['model_uri']}" if where.get("model_uri") else ""))

    def _send_best(self, best: dict) -> None:
        now = int(time.time() * 1000)
        figures = {"test_macro_f1": best["test"]["macro_f1"], "test_accuracy": best["test"]["accuracy"],
                   "seeds_only_test_macro_f1": best["seeds_only_test"]["macro_f1"],
                   "selection_macro_f1": (best.get("selection") or {}).get("macro_f1"), "version": best["version"]}
        self.tracker.log_points([Point(f"best/{k}", float(v), 0, now) for k, v in figures.items() if v is not None])
        self.tracker.set_tag("pgkd.best_student", f"{best['student']}@v{best['version']}")

    def block(self, flushed: bool) -> dict:
        state = "lost" if self.outbox.lost else ("ok" if flushed else "incomplete")
        return self.tracker.where() | {"state": state, "error": self.outbox.lost or (
            None if flushed else f"the tracking server did not take everything within {FINISH_TIMEOUT_S:.0f} s")}

