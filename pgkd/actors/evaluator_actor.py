"""Evaluator actor: scores every checkpoint on validation and publishes the report; what it decides (the best
student, when to stop) is decided by pgkd/evaluator/judge.py."""
from __future__ import annotations

import logging

import ray

from pgkd.actors.common import setup_actor
from pgkd.basics.errors import InputError
from pgkd.actors.metrics import record_evaluation, record_queue
from pgkd.evaluator.config import EvaluatorConfig, LoopConfig
from pgkd.bus.client import CHECKPOINTS, CHOICES, REPORTS, SELECTION
from pgkd.bus.control import BEST, BEST_CHOICE, LATEST_REPORT, request_stop, set_status, stop_requested, teacher_stats_key
from pgkd.bus.messages import Checkpoint, ChoiceMade, EvalReport, SelectionScore
from pgkd.bus.roster import actor_names, retired
from pgkd.cluster.placement import torch_device
from pgkd.evaluator.judge import Judge
from pgkd.evaluator.scoring import score

log = logging.getLogger("pgkd.evaluator")
GROUP = "evaluator"


@ray.remote
class EvaluatorActor:
    def __init__(self, bus_url: str, run_id: str, config: dict, loop: dict, labels: list[str],
                 validation: list[dict], student_names: list[str], gpus: float = 0, selection: list[dict] = ()):
        self.config = EvaluatorConfig.model_validate(config)
        self.loop = LoopConfig.model_validate(loop)
        self.bus = setup_actor("evaluator", bus_url, run_id, self.config.threads)
        self.labels = labels
        self.texts = [row["text"] for row in validation]  # steering: its report is what the teacher reads
        self.gold = [row["label"] for row in validation]
        self.selection_texts = [row["text"] for row in selection]  # choosing: the teacher never sees these
        self.selection_gold = [row["label"] for row in selection]
        self.judge = Judge(self.loop, labels, student_names, self.selection_gold, self.gold)
        self.device = torch_device(gpus)
        self.loaded: dict[str, object] = {}
        self.scored: set[str] = set()
        self.checkpoints: dict[str, Checkpoint] = {}
        self.chosen: str | None = None  # the key of the best student as last published
        self._replay_reports()
        self.bus.ensure_group(CHECKPOINTS, GROUP)

    def _replay_reports(self) -> None:
        """After a restart or `pgkd resume`: patience, the best version and the version count come back from the
        reports already published, so nothing is scored twice and patience does not start over."""
        selected = {s.key: s for s in self.bus.read_all(SELECTION, SelectionScore)}
        for report in self.bus.read_all(REPORTS, EvalReport):
            self.judge.record(report, selected.get(report.key))
            self.scored.add(report.key)
        if self.scored:
            log.info("replayed %d reports; best %s", len(self.scored), self._best_line())

    def _best_line(self) -> str:
        choice = self.judge.best()
        return f"{choice.best.key} {choice.best.macro_f1:.4f}" if choice else "-"

    def run(self) -> int:
        """Score checkpoints until stopped; returns the number scored."""
        recovering = True
        if self.scored:  # resumed: a run already past its patience or max_versions stops again at once
            self._maybe_stop()
        while stop_requested(self.bus) is None:
            reconnects = self.bus.reconnects
            entries = self.bus.read_group(CHECKPOINTS, GROUP, "evaluator", Checkpoint, count=1,
                                          block_ms=int(self.loop.poll_interval_s * 1000), pending_first=recovering)
            recovering = self.bus.reconnects != reconnects  # a reply lost in an outage is still pending: reread
            for entry_id, checkpoint in entries:
                if checkpoint.key not in self.scored:  # else: scored, ack was lost
                    self._evaluate_sound(checkpoint)
                self.bus.ack(CHECKPOINTS, GROUP, [entry_id])
                self._maybe_stop()
            self._forget_retired()
            set_status(self.bus, "evaluator", state="idle", scored=self.judge.stopping.seen)
        return self.judge.stopping.seen

    def _evaluate_sound(self, checkpoint: Checkpoint) -> None:
        """A checkpoint whose files do not match its manifest (torn on disk) is logged and skipped: scoring it
        again after a restart would fail the same way, and the student's next version supersedes it."""
        try:
            self._evaluate(checkpoint)
        except InputError as exc:
            log.error("skipped %s: %s", checkpoint.key, exc)
            self.bus.add_counts("stats:evaluator", {"skipped_checkpoints": 1}, operation=f"skip:{checkpoint.key}")

    def _evaluate(self, checkpoint: Checkpoint) -> EvalReport:
        from pgkd.student.registry import load_student

        set_status(self.bus, "evaluator", state="scoring", checkpoint=f"{checkpoint.student}@v{checkpoint.version}")
        student = load_student(checkpoint.path, self.device)
        previous = self.loaded.get(checkpoint.student)
        if previous is not None:
            student.share_cache(previous)
        self.loaded[checkpoint.student] = student
        scores = score(student, self.texts, self.gold, self.labels, self.config.max_hard_negatives)
        report = EvalReport(student=checkpoint.student, version=checkpoint.version,
                            examples_seen=checkpoint.examples_seen, generated_seen=checkpoint.generated_seen,
                            teacher_generated=self._teacher_generated(),
                            **{k: v for k, v in scores.items() if k in EvalReport.model_fields})
        selected = self._score_selection(student, checkpoint, scores["predictions"])
        self.bus.publish(REPORTS, report)
        self.bus.set_model(LATEST_REPORT, report)
        self.judge.record(report, selected)
        self.scored.add(report.key)
        self._publish_choice(checkpoint)
        record_evaluation(report.student, report.macro_f1, self.judge.best_by_student[report.student])
        record_queue("checkpoints:evaluator", self.bus.lag(CHECKPOINTS, GROUP))
        log.info("%s: macro-F1 %.4f accuracy %.4f (%d examples, %d from the teacher); best %s",
                 report.key, report.macro_f1, report.accuracy, report.examples_seen, report.generated_seen,
                 self._best_line())
        return report

    def _score_selection(self, student, checkpoint: Checkpoint, steering: list[str]) -> SelectionScore | None:
        if not self.selection_texts:
            return None
        scores = score(student, self.selection_texts, self.selection_gold, self.labels, 0)
        selected = SelectionScore(student=checkpoint.student, version=checkpoint.version, macro_f1=scores["macro_f1"],
                                  accuracy=scores["accuracy"], predictions=scores["predictions"],
                                  steering_predictions=steering)
        self.bus.publish(SELECTION, selected)
        return selected

    def _publish_choice(self, checkpoint: Checkpoint) -> None:
        """Publish the judge's best student (with selection texts, the seeds-only one unless a gain beats the
        noise) and why."""
        self.checkpoints[checkpoint.key] = checkpoint
        choice = self.judge.best()
        if choice is None:
            return
        best = self.checkpoints.get(choice.best.key) or next(
            (c for c in self.bus.read_all(CHECKPOINTS, Checkpoint) if c.key == choice.best.key), None)
        if best is None:
            return
        self.checkpoints[best.key] = best
        if self.chosen != best.key:
            log.info("best student now %s: %s", best.key, choice.reason)
            self.chosen = best.key
            self.bus.publish(CHOICES, ChoiceMade(key=best.key, selection_macro_f1=choice.best.macro_f1))
        self.bus.set_model(BEST, best)
        if self.judge.with_selection:  # why, in selection terms (the report's "Chosen" line)
            self.bus.set_fields(BEST_CHOICE, {"key": best.key, "selection_macro_f1": choice.best.macro_f1,
                                              "gain_over_seeds_only": choice.gain, "margin": choice.margin,
                                              "reason": choice.reason, "rule": self.judge.rule()})

    def _teacher_generated(self) -> int:
        return int(sum(float(self.bus.get_fields(teacher_stats_key(t)).get("generated", 0))
                       for t in actor_names(self.bus, "teacher")))

    def _forget_retired(self) -> None:
        """A student scaled down will publish nothing more: its patience must not hold the run open."""
        stopping, gone = self.judge.stopping, retired(self.bus)
        for name in gone & set(stopping.per_student):
            stopping.retire(name)
            log.info("%s was scaled down: no longer waited on for patience", name)
        for name in stopping.retired - gone:
            stopping.unretire(name)

    def _maybe_stop(self) -> None:
        stop = self.judge.stop()
        if stop is not None:
            request_stop(self.bus, *stop)
