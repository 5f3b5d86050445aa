"""Student trainer: consumes examples, trains a version when enough new data arrived, publishes the checkpoint.

Examples are acked only after the version that includes them is published, so a restarted student re-reads
what it had not yet trained on (and skips ids it already has)."""
from __future__ import annotations

import logging

import ray

from pgkd.actors.common import setup_actor
from pgkd.actors.metrics import record_queue, record_version
from pgkd.student.config import student_settings
from pgkd.bus.archive import open_archive, first_id, trimmed_history
from pgkd.bus.client import CHECKPOINTS, EXAMPLES
from pgkd.bus.control import TEACHER_AUDIT, in_rounds, set_status, stop_requested, teachers_done
from pgkd.bus.messages import Checkpoint, ExampleBatch, TeacherAudit
from pgkd.bus.roster import is_retired, register_actor
from pgkd.cluster.placement import torch_device

log = logging.getLogger("pgkd.student")


@ray.remote
class StudentActor:
    def __init__(self, name: str, bus_url: str, run_id: str, config: dict, labels: list[str], checkpoint_dir: str,
                 poll_seconds: float, validation: list[dict], archive_dir: str | None = None):
        from pgkd.student.registry import make_student
        from pgkd.student.trainer import StudentTrainer, checkpoint_places, seed_everything

        self.name, self.poll_ms = name, int(poll_seconds * 1000)
        self.config = student_settings(**config)
        self.bus = setup_actor(name, bus_url, run_id, self.config.threads)
        register_actor(self.bus, "student", name)
        seed_everything(self.config.seed)
        student = make_student(labels, self.config, torch_device(self.config.gpus))
        local, store = checkpoint_places(checkpoint_dir, run_id, name)
        self.trainer = StudentTrainer(student, self.config, local, validation, store)
        self.group = f"student:{name}"
        self.bus.ensure_group(EXAMPLES, self.group)
        self.staged: list[str] = []
        self.archive = open_archive(archive_dir) if archive_dir else None  # what was trimmed from the stream
        self.rounds = in_rounds(self.bus)  # rounds: a version for every batch, whatever its size
        self._resume()

    def run(self) -> int:
        """Train until stopped; returns the number of versions published."""
        while stop_requested(self.bus) is None:
            if is_retired(self.bus, self.name):  # scaled down: what it staged stays pending for a later comeback
                set_status(self.bus, self.name, state="retired", version=self.trainer.version)
                break
            reconnects = self.bus.reconnects
            entries = self.bus.read_group(EXAMPLES, self.group, self.name, ExampleBatch,
                                          count=1 if self.trainer.version < 0 else 100, block_ms=self.poll_ms,
                                          pending_first=False)  # _resume took what this consumer held
            if self.bus.reconnects != reconnects:  # a reply lost in a Redis outage left entries pending here
                entries += [(i, b) for i, b in self.bus.read_own_pending(EXAMPLES, self.group, self.name, ExampleBatch)
                            if i not in self.staged and i not in {e for e, _ in entries}]
            for entry_id, batch in entries:
                self.trainer.add(batch.examples)
                self.staged.append(entry_id)
            if self.trainer.ready(flush=self.rounds or teachers_done(self.bus)):
                self._publish_version()
            else:
                set_status(self.bus, self.name, state="idle", version=self.trainer.version,
                           staged=self.trainer.new_since_version)
        return self.trainer.version + 1

    def _publish_version(self) -> None:
        set_status(self.bus, self.name, state="training", version=self.trainer.version + 1)
        self.trainer.config = self.config.model_copy(update={"alpha": self._kd_alpha()})
        result = self.trainer.train_version()
        self.bus.publish(CHECKPOINTS, Checkpoint(student=self.name, version=result.version, path=str(result.path),
                                                 examples_seen=result.examples_seen,
                                                 generated_seen=result.generated_seen,
                                                 train_seconds=result.train_seconds, train_loss=result.train_loss,
                                                 epochs=result.epochs, validation_loss=result.validation_loss))
        self.bus.ack(EXAMPLES, self.group, self.staged)
        self.staged = []
        record_version(self.name, result.version, result.examples_seen)
        record_queue(f"examples:{self.name}", self.bus.lag(EXAMPLES, self.group))
        set_status(self.bus, self.name, state="published", version=result.version)

    def _kd_alpha(self) -> float:
        """The student's own alpha, else the teacher audit's (set from its calibration error), else 0."""
        if self.config.alpha is not None:
            return self.config.alpha
        audit = self.bus.get_model(TEACHER_AUDIT, TeacherAudit)
        return audit.kd_alpha if audit is not None else 0.0

    def _acked_history(self) -> list[ExampleBatch]:
        """Every batch this group acked: the archive's trimmed ones and the stream's. Read again if the driver
        trimmed between the two reads (then the stream's first id moved)."""
        while True:
            first = first_id(self.bus)
            acked = self.bus.read_acked(EXAMPLES, self.group, ExampleBatch)
            if self.archive is None:
                return acked
            if first_id(self.bus) == first:
                return trimmed_history(self.archive, ExampleBatch, before=first) + acked

    def _resume(self) -> None:
        """After a restart (Ray max_restarts): the newest checkpoint on disk and every example it was trained on
        (acked entries) come back, and the entries held unacked when the actor died are staged again. A newest
        checkpoint that fails to load (torn, changed after commit) gives way to the newest older one that loads;
        the examples it had not seen train again in the next version, whose number goes on from the newest."""
        from pgkd.student.commit import newest_loadable
        from pgkd.student.registry import load_student

        published = sorted((c for c in self.bus.read_all(CHECKPOINTS, Checkpoint) if c.student == self.name),
                           key=lambda c: c.version, reverse=True)
        if published:  # a checkpoint saved but never published was not scored: it is trained again
            newest, by_path = published[0], {c.path: c for c in reversed(published)}  # newest wins a tie
            student, path = newest_loadable(list(dict.fromkeys(c.path for c in published)),
                                            lambda p: load_student(p, torch_device(self.config.gpus)))
            trained = [e for batch in self._acked_history() for e in batch.examples]
            loaded = by_path.get(path)
            if loaded is not None and loaded.version == newest.version:
                self.trainer.resume(student, newest.version, trained)
                log.info("resumed from version %d (%s) with %d examples", newest.version, path, len(trained))
            else:
                seen = loaded.examples_seen if loaded else 0
                self.trainer.resume(student, newest.version, trained, seen)
                log.warning("version %d does not load (above): resumed from %s; version %d trains again on the %d "
                            "examples it had not seen", newest.version,
                            f"version {loaded.version} ({path})" if loaded else "scratch", newest.version + 1,
                            max(len(trained) - seen, 0))
        elif self.archive is not None:  # new here: what was trimmed before it came is in the archive
            trimmed = trimmed_history(self.archive, ExampleBatch, before=first_id(self.bus))
            self.trainer.add([e for batch in trimmed for e in batch.examples])
        for entry_id, batch in self.bus.read_own_pending(EXAMPLES, self.group, self.name, ExampleBatch):
            self.trainer.add(batch.examples)
            self.staged.append(entry_id)
