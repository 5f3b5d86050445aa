"""Teacher replica: reads the newest validation report, writes a batch, publishes it. Never waits on students."""
from __future__ import annotations

import logging
import time

import ray

from pgkd.actors.common import setup_actor
from pgkd.actors.metrics import record_teacher_batch
from pgkd.teacher.config import SIMULATED, TeacherConfig
from pgkd.bus import pool_queue
from pgkd.bus.client import CHECKPOINTS, EXAMPLES, REPORTS
from pgkd.bus.control import TEACHER_AUDIT, latest_report, set_status, stop_requested, teacher_stats_key
from pgkd.bus.messages import Checkpoint, EvalReport, ExampleBatch, TeacherAudit
from pgkd.bus.roster import actor_names, is_retired, register_actor, retired
from pgkd.cluster.cpu import cpu_info
from pgkd.cluster.placement import engine_dtype, torch_device, vllm_block_size
from pgkd.teacher.audit import decide
from pgkd.teacher.backends.base import TeacherUnavailable
from pgkd.teacher.planner import is_newer
from pgkd.teacher.teacher import PoolText

log = logging.getLogger("pgkd.teacher")
BATCH_COUNTER = "teacher:batch_counter"
AUDIT_WAIT_S = 900  # replicas after the first wait this long for its audit
STUDENT_WAIT_S = 120  # the audit waits this long for a seeds-only checkpoint to compare with


@ray.remote
class TeacherActor:
    def __init__(self, name: str, bus_url: str, run_id: str, config: dict, labels: list, seeds: list[dict],
                 protected_texts: list[str], task: str, replica: int,
                 reservoir: list[dict] | None = None, audit_rows: list[dict] | None = None):
        self.name, self.replica = name, replica
        self.config = TeacherConfig.model_validate(config)
        self.bus = setup_actor(name, bus_url, run_id, self.config.threads)
        register_actor(self.bus, "teacher", name)
        self.inputs = (labels, seeds, protected_texts, task)
        self.reservoir = reservoir or []  # the simulated teacher's hidden labelled texts (benchmarks only)
        self.audit_rows = audit_rows or []  # steering validation texts of known label, for the teacher audit

    def run(self) -> dict:
        """Generate until stopped or out of budget; returns this replica's counts."""
        from pgkd.basics.dataset import Label
        from pgkd.teacher.factory import make_teacher

        labels, seeds, protected, task = self.inputs
        set_status(self.bus, self.name, state="loading engine")
        c = self.config
        embed = self._embedder() if c.backend == SIMULATED else None
        if c.backend == "vllm":  # "auto" becomes what this node's CPU (or GPU) runs fastest
            c = c.model_copy(update={"dtype": engine_dtype(c.dtype, c.gpus_per_replica)})
            log.info("engine dtype %s on %s", c.dtype, cpu_info().describe())
        loading = time.time()
        teacher = make_teacher(c, [Label(**l) for l in labels], seeds, protected, self.name, task, self.replica,
                               vllm_block_size(), self.reservoir, embed)
        self.bus.add_counts(teacher_stats_key(self.name), {"engine_load_seconds": round(time.time() - loading, 1)})
        log.info("engine ready after %.0fs: %s", time.time() - loading, teacher.model_name)
        if hasattr(teacher, "format"):
            log.info("prompt format %s, structured generation %s", teacher.format.prompt_format, teacher.structured)
            for note in teacher.format.notes:
                log.warning(note)
        try:
            self._follow_audit(teacher)
            self._loop(teacher)
        except TeacherUnavailable as exc:  # said in `pgkd status` too; the driver stops a run with no teacher left
            set_status(self.bus, self.name, state="failed", error=str(exc)[:300], finished=time.time())
            raise
        finally:
            teacher.close()
        return self.bus.get_fields(teacher_stats_key(self.name))

    def _follow_audit(self, teacher) -> None:
        """Replica 0 audits the teacher and decides the run's thresholds and policy; every replica follows that."""
        if not (self.config.audit and self.audit_rows and hasattr(teacher, "audit")):
            return
        if self.replica == 0 and self.bus.get_model(TEACHER_AUDIT, TeacherAudit) is None:  # a restart reuses it
            set_status(self.bus, self.name, state="auditing the teacher")
            audit = teacher.audit(self.audit_rows)
            audit = decide(self._with_student(audit, teacher.label_names), self.config)
            self.bus.set_once(TEACHER_AUDIT, audit)
            log.info("teacher audit: accuracy %.3f macro-F1 %.3f ECE %.3f on %d texts in %.0fs; %s", audit.accuracy,
                     audit.macro_f1, audit.ece, audit.texts, audit.seconds, "; ".join(audit.decisions))
        deadline = time.time() + AUDIT_WAIT_S
        while (audit := self.bus.get_model(TEACHER_AUDIT, TeacherAudit)) is None:
            if time.time() > deadline or stop_requested(self.bus) is not None:
                log.warning("no teacher audit after %.0fs: default thresholds", AUDIT_WAIT_S)
                return
            time.sleep(1)
        teacher.follow(audit)

    def _with_student(self, audit: TeacherAudit, label_names: list[str]) -> TeacherAudit:
        """The best seeds-only student (the v0 the evaluator scored highest) on the same texts and candidates, once
        every student's v0 is scored (or STUDENT_WAIT_S passed with at least one)."""
        from pgkd.student.registry import load_student
        from pgkd.teacher.audit import with_student

        deadline = time.time() + STUDENT_WAIT_S
        while True:
            scored = {r.student: r for r in self.bus.read_all(REPORTS, EvalReport) if r.version == 0}
            waiting = time.time() < deadline and stop_requested(self.bus) is None
            if len(scored) >= len(actor_names(self.bus, "student")) or (scored and not waiting):
                break
            if not waiting:
                return audit
            time.sleep(1)
        best = max(scored.values(), key=lambda r: r.macro_f1)
        first = [c for c in self.bus.read_all(CHECKPOINTS, Checkpoint) if c.key == best.key]
        if not first:
            return audit
        student = load_student(first[0].path, torch_device(0))
        probabilities = student.predict_proba([row["text"] for row in self.audit_rows])
        return with_student(audit, first[0].key, probabilities, student.labels, self.audit_rows, label_names,
                            self.config)

    def _embedder(self):
        """Fixed text vectors for the simulated teacher's nearest texts (the frozen encoder a student would use)."""
        from pgkd.student.encoder import text_embedder
        from pgkd.teacher.model_store import cache_root

        return text_embedder(self.config.simulated.embedding, torch_device(self.config.gpus_per_replica),
                             cache_dir=cache_root() / "embeddings")

    def _loop(self, teacher) -> None:
        used: dict[str, int] = {}
        current = None
        since = time.time()  # end of the previous batch: wall time between batch ends holds any engine idle time
        while stop_requested(self.bus) is None:
            if is_retired(self.bus, self.name):  # `pgkd scale` took this replica away
                set_status(self.bus, self.name, state="retired", finished=time.time())
                return
            self._wait_for_students()
            number = self.bus.next_number(BATCH_COUNTER)  # run-wide: replicas never plan the same batch
            if teacher.done or (self.config.max_batches is not None and number >= self.config.max_batches):
                break
            report = latest_report(self.bus)
            if report is not None and is_newer(report, used):
                current, used[report.student] = report, report.version
            set_status(self.bus, self.name, state="generating", batch=number,
                       steered_by=current.key if current else "none")
            claimed = self._claim_pool(teacher)
            examples, stats = teacher.write_batch(current, number, [PoolText(h.text, h.top_labels) for h in claimed])
            if examples:
                self.bus.publish(EXAMPLES, ExampleBatch(producer=self.name, batch=number, examples=examples))
            pool_queue.mark_labelled(self.bus, [h.id for h in claimed])  # after publishing: a crash re-offers
            counts = stats.as_counts() | {"batches": 1, "wall_seconds": round(time.time() - since, 3)}
            since = time.time()
            self.bus.add_counts(teacher_stats_key(self.name), counts)
            record_teacher_batch(self.name, counts)
            log.info("batch %d (steered by %s): %d generated, %d kept, dropped %s, %.1fs (generate %.1fs, label %.1fs)",
                     number, current.key if current else "no report", stats.generated, stats.kept,
                     dict(stats.dropped), stats.busy_seconds, stats.generate_seconds, stats.label_seconds)
        set_status(self.bus, self.name, state="done", finished=time.time())

    def _wait_for_students(self) -> None:
        """Backpressure: a teacher more than max_ahead_batches ahead of the slowest live student waits, so Redis
        and the students' backlog stay bounded however fast the teacher is."""
        limit = self.config.max_ahead_batches
        while limit and stop_requested(self.bus) is None and not is_retired(self.bus, self.name):
            gone = retired(self.bus)
            students = [s for s in actor_names(self.bus, "student") if s not in gone]
            if max((self.bus.backlog(EXAMPLES, f"student:{s}", limit) for s in students), default=0) <= limit:
                return
            set_status(self.bus, self.name, state="waiting for students")
            time.sleep(0.5)

    def _claim_pool(self, teacher) -> list:
        """The most uncertain pool texts the pool scorer offered (none unless pool labelling is on and the teacher
        audit left it on: teacher.config holds that decision)."""
        if not teacher.config.pool_labelling:
            return []
        return pool_queue.claim(self.bus, self.config.pool_per_batch)
