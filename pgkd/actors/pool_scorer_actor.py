"""Pool scorer: after each new best student (and when the teachers took all it offered), scores the next shards
of the pool with that checkpoint on Ray Data and offers the texts it is least sure of to the teachers.

It runs beside the students and the evaluator and never blocks them; its state (cursor, counts) is on the bus,
so a restart or a resumed run goes on where it was and never offers a text a teacher already tried."""
from __future__ import annotations

import logging
import time

import ray

from pgkd.actors.common import setup_actor
from pgkd.student.base import StudentSettings
from pgkd.student.config import student_settings
from pgkd.basics.pool_files import PoolShard
from pgkd.bus import pool_queue
from pgkd.bus.control import BEST, TEACHER_AUDIT, set_status, stop_requested
from pgkd.bus.messages import Checkpoint, PoolHint, TeacherAudit
from pgkd.bus.roster import pool_of

log = logging.getLogger("pgkd.pool")
NAME = "pool-scorer"
STATE_EVERY_S = 2.0
RETRY_S = 30.0


@ray.remote
class PoolScorerActor:
    def __init__(self, bus_url: str, run_id: str, students: list[dict], shards: list[dict], protected_ids: list[str],
                 poll_seconds: float, per_round: int):
        self.bus = setup_actor(NAME, bus_url, run_id, 1)
        self.students = {s["name"]: student_settings(**s) for s in students}
        self.shards = [PoolShard(**s) for s in shards]
        self.protected = frozenset(protected_ids)
        self.poll_seconds, self.per_round = poll_seconds, per_round
        state = pool_queue.state(self.bus)  # a restart or a resume goes on from here
        self.totals = {key: int(float(state.get(key, 0))) for key in
                       ("cursor", "rounds", "shards_done", "texts_scored", "bad_rows", "skipped", "offered")}
        self.scored_with = state.get("checkpoint") or None
        self.dry_rounds = 0  # rounds in a row with this checkpoint that offered nothing
        pool_queue.set_state(self.bus, files=len({s.file for s in self.shards}), shards_total=len(self.shards),
                             pool_rows=sum(s.rows for s in self.shards), **self.totals)

    def run(self) -> int:
        """Score rounds until the run stops; returns the rounds done (this session's and before)."""
        while stop_requested(self.bus) is None:
            best = self.bus.get_model(BEST, Checkpoint)
            audit = self.bus.get_model(TEACHER_AUDIT, TeacherAudit)
            if audit is not None and not audit.pool_labelling:
                set_status(self.bus, NAME, state="off: the teacher audit turned pool labelling off")
            elif best is not None and self._student_of(best).pool_queries > 0:
                from pgkd.student.pool_rounds import exhausted, round_due

                why = round_due(best.key, self.scored_with, pool_queue.queued(self.bus),
                                exhausted(self.dry_rounds, self.per_round, len(self.shards)))
                if why:
                    self._try_round(best, why)
                    continue
            time.sleep(self.poll_seconds)
        set_status(self.bus, NAME, state="done")
        return self.totals["rounds"]

    def _student_of(self, checkpoint: Checkpoint) -> StudentSettings:
        named = pool_of(checkpoint.student)
        return self.students[named[0]] if named else next(iter(self.students.values()))

    def _try_round(self, best: Checkpoint, why: str) -> None:
        """A round that fails (a checkpoint gone, a scoring actor lost) is logged and tried again after a pause:
        active learning pauses, the run goes on."""
        try:
            self._score_round(best, why)
        except Exception as exc:  # anything Ray Data or a student raises: the next round may well work
            log.exception("scoring round with %s failed; trying again in %.0fs", best.key, RETRY_S)
            set_status(self.bus, NAME, state=f"round failed: {type(exc).__name__}: {str(exc)[:200]}")
            self.bus.add_counts(pool_queue.STATE, {"failed_rounds": 1})
            time.sleep(RETRY_S)

    def _score_round(self, best: Checkpoint, why: str) -> None:
        from pgkd.actors.pool_data import candidates_of, scoring_round, summaries_of
        from pgkd.student.commit import sound_version
        from pgkd.student.pool_rounds import RoundTally, next_shards
        from pgkd.student.pool_scoring import RoundCandidates

        student = self._student_of(best)
        path = sound_version(best.path)  # torn after commit: the newest older version that verifies (logged)
        picked, cursor = next_shards(len(self.shards), self.totals["cursor"], self.per_round)
        labelled = pool_queue.labelled(self.bus)
        candidates = RoundCandidates(student.pool_queries, student.pool_strategy, student.pool_balanced, labelled)
        tally, started, shown = RoundTally(), time.time(), 0.0
        seed = student.seed * 1000 + self.totals["rounds"]
        log.info("round %d (%s): %d of %d shards with %s, %s", self.totals["rounds"] + 1, why, len(picked),
                 len(self.shards), best.key, student.pool_strategy)
        set_status(self.bus, NAME, state="scoring", checkpoint=best.key, scored=0)
        for batch in scoring_round([self.shards[i] for i in picked], str(path), student, student.pool_queries, seed,
                                   self.protected | labelled):
            candidates.add(candidates_of(batch))
            for row in summaries_of(batch):
                for problem in tally.add_summary(*row):
                    log.warning("pool row skipped: %s", problem)
            stopping = stop_requested(self.bus) is not None
            if stopping or time.time() - shown > STATE_EVERY_S:
                shown = time.time()
                set_status(self.bus, NAME, state="scoring", checkpoint=best.key, scored=tally.scored)
            if stopping:
                return  # a round cut short offers nothing and leaves the cursor: the next one redoes it
        chosen = candidates.pick(student.pool_queries, student.pool_strategy, seed)
        offered = pool_queue.offer(self.bus, [PoolHint(id=c.id, text=c.text, uncertainty=c.score, student=best.student,
                                                       version=best.version, top_labels=c.top_labels) for c in chosen])
        self._close_round(best, tally, cursor, len(picked), offered, time.time() - started, student.pool_strategy)

    def _close_round(self, best: Checkpoint, tally, cursor: int, shards: int, offered: int, seconds: float,
                     strategy: str) -> None:
        t = self.totals
        t.update(cursor=cursor, rounds=t["rounds"] + 1, shards_done=t["shards_done"] + shards,
                 texts_scored=t["texts_scored"] + tally.scored, bad_rows=t["bad_rows"] + tally.bad,
                 skipped=t["skipped"] + tally.skipped, offered=t["offered"] + offered)
        self.dry_rounds = 0 if offered else (self.dry_rounds + 1 if best.key == self.scored_with else 1)
        self.scored_with = best.key
        rate = tally.scored / seconds if seconds > 0 else 0.0
        pool_queue.set_state(self.bus, **t, checkpoint=best.key, strategy=strategy, texts_per_second=round(rate, 1),
                             last_round_seconds=round(seconds, 1), last_round_texts=tally.scored)
        set_status(self.bus, NAME, state="idle", checkpoint=best.key, scored=tally.scored)
        log.info("round %d: scored %d texts in %.1fs (%.0f/s), %d bad rows, %d skipped; offered %d",
                 t["rounds"], tally.scored, seconds, rate, tally.bad, tally.skipped, offered)

