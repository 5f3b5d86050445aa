"""Teacher replica: reads the newest validation report, writes a batch, publishes it. Never waits on students."""
from __future__ import annotations

import logging
import time

import ray

from pgkd.actors.common import setup_actor
from pgkd.actors.metrics import record_teacher_batch
from pgkd.bus import pool_queue
from pgkd.bus.client import CHECKPOINTS, EXAMPLES, REPORTS
from pgkd.bus.control import (TEACHER_AUDIT, in_rounds, latest_report, set_status, stop_requested,
                               teacher_stats_key)
from pgkd.bus.messages import Checkpoint, EvalReport, ExampleBatch, TeacherAudit
from pgkd.bus.roster import actor_names, is_retired, register_actor, retired
from pgkd.cluster.cpu import cpu_info
from pgkd.cluster.placement import engine_on_this_node, torch_device, vllm_block_size
from pgkd.teacher.audit import AUDITOR, SeedsOnly, run_audit
from pgkd.teacher.backends.base import TEACHER_BACKENDS, TeacherUnavailable
from pgkd.teacher.config import teacher_kind
from pgkd.teacher.planner import is_newer
from pgkd.teacher.seam import BatchTeacher, PoolText
from pgkd.teacher.settings import TeacherSettings

log = logging.getLogger("pgkd.teacher")
BATCH_COUNTER = "teacher:batch_counter"
AUDIT_WAIT_S = 900  # replicas after the first warn when its audit is this late (they write under the safest policy)
STUDENT_WAIT_S = 120  # the audit waits this long for a seeds-only checkpoint to compare with
POOL_WAIT_S = 0.5  # a labelling-only teacher with no pool texts offered looks again after this long
ROUND_WAIT_S = 600  # loop.mode rounds: the longest a teacher waits for its round's scores (a student lost)


@ray.remote
class TeacherActor:
    def __init__(self, name: str, bus_url: str, run_id: str, config: dict, labels: list, seeds: list[dict],
                 protected_texts: list[str], task: str, replica: int,
                 reservoir: list[dict] | None = None, audit_rows: list[dict] | None = None):
        self.name, self.replica = name, replica
        self.config = TEACHER_BACKENDS.parse(config)
        self.bus = setup_actor(name, bus_url, run_id, self.config.threads)
        register_actor(self.bus, "teacher", name)
        self.inputs = (labels, seeds, protected_texts, task)
        self.reservoir = reservoir or []  # the simulated teacher's hidden labelled texts (benchmarks only)
        self.audit_rows = audit_rows or []  # steering validation texts of known label, for the teacher audit

    def run(self) -> dict:
        """Generate until stopped or out of budget; returns this replica's counts."""
        set_status(self.bus, self.name, state="loading engine")
        settings = self._on_this_node(self.config)
        encoder = teacher_kind(settings).text_encoder(settings)
        embed = self._embedder(encoder) if encoder else None
        loading = time.time()
        teacher = self._make_teacher(settings, embed)
        self.bus.add_counts(teacher_stats_key(self.name), {"engine_load_seconds": round(time.time() - loading, 1)})
        log.info("engine ready after %.0fs: %s", time.time() - loading, teacher.model_name)
        for line in teacher.describe():
            log.info(line)
        for note in teacher.notes():
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

    def _make_teacher(self, settings: TeacherSettings, embed) -> BatchTeacher:
        from pgkd.basics.dataset import Label
        from pgkd.teacher.factory import TeacherJob, make_teacher

        labels, seeds, protected, task = self.inputs
        return make_teacher(settings, TeacherJob([Label(**label) for label in labels], seeds, protected, self.name,
                                                 task, self.replica, vllm_block_size(), self.reservoir, embed))

    @staticmethod
    def _on_this_node(settings: TeacherSettings) -> TeacherSettings:
        """An engine's dtype "auto" becomes what this node's CPU (or GPU) runs fastest, and its engine_process
        "auto" where this node starts it fastest."""
        settings = engine_on_this_node(settings)
        if settings.in_process_dtype() is not None:
            log.info("engine dtype %s on %s", settings.in_process_dtype(), cpu_info().describe())
        return settings

    def _follow_audit(self, teacher: BatchTeacher) -> None:
        """The auditing replica audits the teacher and publishes the run's decision (teacher/audit.py run_audit);
        every replica follows what was published. The others do not wait for it: they write under the safest
        policy (LabelPolicy.before_audit) until it is there (_audit_arrived, at each batch)."""
        self.configured, self.audit_pending = teacher.policy, False
        if not (self.config.audited and self.audit_rows) or stop_requested(self.bus) is not None:
            return  # a run stopped while the engine loaded does not wait for an audit it will never use
        if self.replica == AUDITOR and self.bus.get_model(TEACHER_AUDIT, TeacherAudit) is None:  # a restart reuses it
            set_status(self.bus, self.name, state="auditing the teacher")
            audit = run_audit(teacher, self.audit_rows, self.config, self._seeds_only, self.config.audit_budget_s)
            self.bus.set_once(TEACHER_AUDIT, audit)
            log.info("teacher audit: accuracy %.3f macro-F1 %.3f ECE %.3f on %d texts in %.0fs; %s", audit.accuracy,
                     audit.macro_f1, audit.ece, audit.texts, audit.seconds, "; ".join(audit.decisions))
        self.audit_pending, self.audit_deadline = True, time.time() + AUDIT_WAIT_S
        if not self._audit_arrived(teacher):
            teacher.follow(self.configured.before_audit())
            log.info("writing under the safest policy (min_confidence %.2f, no pool texts, hard labels) until the "
                     "run's teacher audit is decided", teacher.policy.min_confidence)

    def _audit_arrived(self, teacher: BatchTeacher) -> bool:
        """Follow the run's audit once it is published (True: followed now or before)."""
        if not getattr(self, "audit_pending", False):
            return True
        audit = self.bus.get_model(TEACHER_AUDIT, TeacherAudit)
        if audit is None:
            if time.time() > self.audit_deadline:
                log.warning("no teacher audit after %.0fs: still the safest policy", AUDIT_WAIT_S)
                self.audit_deadline = float("inf")
            return False
        teacher.follow(self.configured.following(audit))
        self.audit_pending = False
        log.info("following the run's teacher audit: min_confidence %.3f", teacher.policy.min_confidence)
        return True

    def _seeds_only(self, wait_s: float) -> SeedsOnly | None:
        """The best seeds-only student (the v0 the evaluator scored highest) with its probabilities on the audit
        texts, once every student's v0 is scored (or what is left of the audit's budget passed with at least one,
        STUDENT_WAIT_S at most); None: none."""
        from pgkd.student.registry import load_student

        deadline = time.time() + min(wait_s, STUDENT_WAIT_S)
        while True:
            scored = {r.student: r for r in self.bus.read_all(REPORTS, EvalReport) if r.version == 0}
            waiting = time.time() < deadline and stop_requested(self.bus) is None
            if len(scored) >= len(actor_names(self.bus, "student")) or (scored and not waiting):
                break
            if not waiting:
                return None
            time.sleep(1)
        best = max(scored.values(), key=lambda r: r.macro_f1)
        first = [c for c in self.bus.read_all(CHECKPOINTS, Checkpoint) if c.key == best.key]
        if not first:
            return None
        student = load_student(first[0].path, torch_device(0))
        return SeedsOnly(first[0].key, student.labels, student.predict_proba([row["text"] for row in self.audit_rows]))

    def _embedder(self, encoder: str):
        """Fixed text vectors from the encoder the teacher kind asks for (the frozen one a student would use)."""
        from pgkd.student.embedder import text_embedder
        from pgkd.basics.models import cache_root

        return text_embedder(encoder, torch_device(self.config.gpus_per_replica), cache_dir=cache_root() / "embeddings")

    def _loop(self, teacher: BatchTeacher) -> None:
        used: dict[str, int] = {}
        current = None
        since = time.time()  # end of the previous batch: wall time between batch ends holds any engine idle time
        rounds, published = in_rounds(self.bus), 0
        while stop_requested(self.bus) is None:
            if is_retired(self.bus, self.name):  # `pgkd scale` took this replica away
                set_status(self.bus, self.name, state="retired", finished=time.time())
                return
            self._wait_for_students()
            self._audit_arrived(teacher)
            if rounds and not self._wait_for_round(published):
                continue  # stopped or retired while it waited: the loop's head ends it
            if teacher.done or not (teacher.writes_unprompted or teacher.policy.pool_labelling):
                break
            claimed = self._claim_pool(teacher)
            if not claimed and not teacher.writes_unprompted:  # labelling only: an empty batch would spin
                set_status(self.bus, self.name, state="waiting for pool texts")
                time.sleep(POOL_WAIT_S)
                continue
            number = self.bus.next_number(BATCH_COUNTER)  # run-wide: replicas never plan the same batch
            if self.config.max_batches is not None and number >= self.config.max_batches:
                break  # texts it claimed are offered again once the claim is stale
            report = latest_report(self.bus)
            if report is not None and is_newer(report, used):
                current, used[report.student] = report, report.version
            set_status(self.bus, self.name, state="generating" if teacher.writes_unprompted else "labelling",
                       batch=number, steered_by=current.key if current else "none")
            examples, stats = teacher.write_batch(current, number, [PoolText(h.text, h.top_labels) for h in claimed])
            counts = stats.as_counts() | {"batches": 1, "wall_seconds": round(time.time() - since, 3)}
            since = time.time()
            batch = ExampleBatch(producer=self.name, batch=number, examples=examples)
            # the batch and its counts together or not at all, once per batch id (a retry, or a kill in between,
            # can neither double nor part them; students also drop repeated examples)
            self.bus.once(f"examples:{self.name}:{number}", *([self.bus.append_command(EXAMPLES, batch)] if examples
                                                             else []),
                          *self.bus.count_commands(teacher_stats_key(self.name), counts))
            pool_queue.mark_labelled(self.bus, [h.id for h in claimed])  # after publishing: a crash re-offers
            published += len(examples)
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

    def _wait_for_round(self, published: int) -> bool:
        """loop.mode rounds: wait until every live student's version trained on this teacher's `published`
        examples has been scored (for the first batch: their seeds-only versions), so the next batch is steered by
        it. Nobody overlaps: the paper's loop, for comparison with pgkd's own. False: the run stopped meanwhile."""
        deadline = time.time() + ROUND_WAIT_S
        set_status(self.bus, self.name, state="waiting for the round's scores")
        while stop_requested(self.bus) is None and not is_retired(self.bus, self.name):
            gone = retired(self.bus)
            students = [s for s in actor_names(self.bus, "student") if s not in gone]
            scored: dict[str, int] = {}
            for report in self.bus.read_all(REPORTS, EvalReport):
                scored[report.student] = max(scored.get(report.student, -1), report.generated_seen)
            if all(scored.get(s, -1) >= published for s in students):
                return True
            if time.time() > deadline:
                log.warning("no scores for the round after %.0fs: writing the next batch anyway", ROUND_WAIT_S)
                return True
            time.sleep(0.2)
        return False

    def _claim_pool(self, teacher: BatchTeacher) -> list:
        """The most uncertain pool texts the pool scorer offered (none unless pool labelling is on and the teacher
        audit left it on: the teacher's policy holds that decision)."""
        if not teacher.policy.pool_labelling:
            return []
        return pool_queue.claim(self.bus, self.config.pool_per_batch)
