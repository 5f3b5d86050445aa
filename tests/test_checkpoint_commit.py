"""Checkpoints are committed whole with a manifest (pgkd/student/commit.py): a torn one is refused with the file
and the reason, the readers fall back to the version before it, and a writer that fails leaves nothing."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pgkd.actors.student_actor import StudentActor
from pgkd.basics.errors import InputError
from pgkd.bus.client import CHECKPOINTS, EXAMPLES
from pgkd.bus.messages import Checkpoint, Example, ExampleBatch
from pgkd.student.commit import MANIFEST, commit_folder, newest_loadable, sound_version, verify
from pgkd.student.config import student_settings
from pgkd.student.registry import load_student, make_student
from pgkd.student.trainer import StudentTrainer

LABELS = ["card", "transfer"]
SEEDS = [("where is my card", "card"), ("my card is lost", "card"), ("send money to mom", "transfer"),
         ("transfer cash abroad", "transfer")]
MORE = [("card not arrived", "card"), ("wire funds to dad", "transfer"), ("card blocked", "card"),
        ("move money to savings", "transfer")]
CONFIG = student_settings(kind="ngram", buckets=64, epochs=5, min_new_examples=2, label_filter=0)


def examples(rows, source="seed") -> list[Example]:
    return [Example(text=t, label=l, source=source) for t, l in rows]


def trained(tmp_path: Path, versions: int = 2) -> StudentTrainer:
    trainer = StudentTrainer(make_student(LABELS, CONFIG, "cpu"), CONFIG, tmp_path / "checkpoints")
    for rows in [SEEDS, MORE][:versions]:
        trainer.add(examples(rows))
        trainer.train_version()
    return trainer


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_version_is_committed_with_a_manifest_of_every_file(tmp_path):
    trainer = trained(tmp_path)
    folder = tmp_path / "checkpoints" / "v0001"
    manifest = json.loads((folder / MANIFEST).read_text())["files"]
    assert sorted(manifest) == ["ngram.pt", "student.json"]
    assert manifest["ngram.pt"]["size"] == (folder / "ngram.pt").stat().st_size
    assert visible(tmp_path / "checkpoints") == ["v0000", "v0001"]  # no temporary folder left
    assert load_student(folder, "cpu").predict_proba(["card"]) == pytest.approx(trainer.student.predict_proba(["card"]))


def flip(data: bytes) -> bytes:
    """The same size, one byte different: only the checksum can tell."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


TEARS = {  # how a committed file gets torn -> what the refusal says
    "truncated": (lambda f: f.write_bytes(f.read_bytes()[:-7]), "ngram.pt", "truncated or changed after commit"),
    "missing": (lambda f: f.unlink(), "ngram.pt", "missing: listed in manifest.json"),
    "changed": (lambda f: f.write_bytes(flip(f.read_bytes())), "ngram.pt", "content differs"),
    "manifest damaged": (lambda f: f.write_text("{"), "manifest.json", "damaged manifest"),
}


@pytest.mark.parametrize("tear", list(TEARS))
def test_a_torn_checkpoint_is_refused_with_the_file_and_the_reason(tear, tmp_path):
    trained(tmp_path, 1)
    folder = tmp_path / "checkpoints" / "v0000"
    damage, name, reason = TEARS[tear]
    damage(folder / name)
    with pytest.raises(InputError, match=reason) as refused:
        load_student(folder, "cpu")
    assert str(folder / name) in str(refused.value)


def test_a_folder_without_a_manifest_still_loads(tmp_path):
    trained(tmp_path, 1)
    folder = tmp_path / "checkpoints" / "v0000"
    (folder / MANIFEST).unlink()
    verify(folder)
    load_student(folder, "cpu")


def test_a_failed_write_leaves_no_version_and_the_trainer_as_it_was(tmp_path):
    trainer = trained(tmp_path, 1)
    save = trainer.student.save

    def dies_half_way(folder):
        save(folder)
        raise OSError("disk full")

    trainer.student.save = dies_half_way
    trainer.add(examples(MORE))
    with pytest.raises(OSError, match="disk full"):
        trainer.train_version()
    assert visible(tmp_path / "checkpoints") == ["v0000"]
    assert (trainer.version, trainer.new_since_version) == (0, len(MORE))  # the version is trained again


def test_a_commit_replaces_an_unpublished_folder_and_clears_a_killed_writers_leftovers(tmp_path):
    final = tmp_path / "v0003"
    commit_folder(lambda f: (f / "a.txt").write_text("first"), final)
    (tmp_path / ".v0003.abcd.tmp").mkdir()  # what a writer SIGKILLed mid-write leaves
    (tmp_path / ".v0003.abcd.tmp" / "half").write_text("x")
    commit_folder(lambda f: (f / "b.txt").write_text("second"), final)
    assert visible(tmp_path) == ["v0003"] and visible(final) == ["b.txt", MANIFEST]
    verify(final)


def test_the_pool_scorer_falls_back_to_the_newest_sound_version(tmp_path, caplog):
    trained(tmp_path, 2)
    checkpoints = tmp_path / "checkpoints"
    assert sound_version(checkpoints / "v0001") == checkpoints / "v0001"
    (checkpoints / "v0001" / "ngram.pt").write_bytes(b"torn")
    with caplog.at_level(logging.WARNING):
        assert sound_version(checkpoints / "v0001") == checkpoints / "v0000"
    assert "v0001 fails verification" in caplog.text and "bytes where manifest.json says" in caplog.text
    (checkpoints / "v0000" / "student.json").write_text("{}")
    with pytest.raises(InputError, match="no sound checkpoint"):
        sound_version(checkpoints / "v0001")


def test_newest_loadable_says_why_it_skipped(tmp_path, caplog):
    trained(tmp_path, 2)
    newest, older = tmp_path / "checkpoints" / "v0001", tmp_path / "checkpoints" / "v0000"
    (newest / "ngram.pt").unlink()
    with caplog.at_level(logging.WARNING):
        student, path = newest_loadable([newest, older], lambda p: load_student(p, "cpu"))
    assert path == older and student.labels == LABELS and "v0001 cannot be loaded" in caplog.text


def resumed_actor(bus, trainer_dir: Path, published: list[Checkpoint], acked: list[Example]):
    """The student actor's own _resume, on a real bus, without Ray."""
    actor = object.__new__(StudentActor.__ray_metadata__.modified_class)
    actor.name, actor.bus, actor.config, actor.group = "s-0", bus, CONFIG, "student:s-0"
    actor.staged, actor.archive = [], None
    actor.trainer = StudentTrainer(make_student(LABELS, CONFIG, "cpu"), CONFIG, trainer_dir)
    bus.ensure_group(EXAMPLES, actor.group)
    bus.publish(EXAMPLES, ExampleBatch(producer="t", batch=0, examples=acked))
    bus.read_group(EXAMPLES, actor.group, actor.name, ExampleBatch, count=10, block_ms=10)
    bus.ack(EXAMPLES, actor.group, [i for i, _ in bus.read_own_pending(EXAMPLES, actor.group, actor.name,
                                                                        ExampleBatch)])
    for checkpoint in published:
        bus.publish(CHECKPOINTS, checkpoint)
    actor._resume()
    return actor


def published(tmp_path: Path) -> list[Checkpoint]:
    return [Checkpoint(student="s-0", version=v, path=str(tmp_path / "checkpoints" / f"v{v:04d}"),
                       examples_seen=seen, generated_seen=0, train_seconds=1.0) for v, seen in ((0, 4), (1, 8))]


def test_a_restarted_student_resumes_from_the_version_before_a_torn_one(bus, tmp_path, caplog):
    trainer = trained(tmp_path, 2)
    (tmp_path / "checkpoints" / "v0001" / "ngram.pt").write_bytes(b"torn")
    with caplog.at_level(logging.INFO):
        actor = resumed_actor(bus, tmp_path / "checkpoints", published(tmp_path), trainer.examples)
    resumed = actor.trainer
    assert "v0001 cannot be loaded" in caplog.text and "resumed from version 0" in caplog.text
    assert (resumed.version, resumed.trained_upto, resumed.new_since_version, resumed.fitted) == (1, 4, 4, True)
    assert resumed.ready()  # the examples v0 had not seen train again at once, as version 2 (never a second v1)
    assert resumed.train_version().path == str(tmp_path / "checkpoints" / "v0002")


def test_a_restarted_student_with_no_loadable_version_trains_afresh_under_the_next_number(bus, tmp_path):
    trainer = trained(tmp_path, 2)
    for version in ("v0000", "v0001"):
        (tmp_path / "checkpoints" / version / "ngram.pt").unlink()
    resumed = resumed_actor(bus, tmp_path / "checkpoints", published(tmp_path), trainer.examples).trainer
    assert (resumed.version, resumed.trained_upto, resumed.fitted) == (1, 0, False)
    assert resumed.train_version().version == 2


def test_a_copy_of_a_version_is_committed_and_a_torn_source_is_not_copied(tmp_path):
    from pgkd.student.commit import commit_copy

    trained(tmp_path, 1)
    source, best = tmp_path / "checkpoints" / "v0000", tmp_path / "best_student"
    commit_copy(source, best)
    assert visible(best) == [MANIFEST, "ngram.pt", "student.json"] and load_student(best, "cpu").labels == LABELS
    (source / "ngram.pt").write_bytes(b"torn")
    with pytest.raises(InputError, match="truncated or changed"):
        commit_copy(source, best)
    verify(best)  # the earlier copy stands
