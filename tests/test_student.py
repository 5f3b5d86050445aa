"""The MiniLM student (embedded weights): training, KD, save/load, trainer versions."""
import numpy as np
import pytest
import torch

from pgkd.student.config import student_settings
from pgkd.bus.messages import Example
from pgkd.student.registry import load_student, make_student
from pgkd.student.trainer import StudentTrainer

LABELS = ["card", "transfer"]
TRAIN = [("where is my new card", "card"), ("my card has not arrived yet", "card"), ("card delivery status", "card"),
         ("send money to my friend", "transfer"), ("how do I transfer cash", "transfer"),
         ("wire funds to my mom", "transfer")]


def examples(rows, source="seed"):
    return [Example(text=t, label=l, source=source) for t, l in rows]


@pytest.fixture(scope="module")
def config():
    return student_settings(epochs=40, min_new_examples=2, threads=1)


def test_trains_predicts_and_round_trips(tmp_path, config):
    student = make_student(LABELS, config, "cpu")
    student.fit(examples(TRAIN), config)
    texts = ["has my card shipped", "transfer 20 dollars to John"]
    assert [label for label, _ in student.predict(texts)] == ["card", "transfer"]
    loaded = load_student(student.save(tmp_path / "s"))
    assert np.allclose(loaded.predict_proba(texts), student.predict_proba(texts), atol=1e-5)


def test_soft_labels_pull_the_student(config):
    ambiguous = "I need help with my account"
    soft = [Example(text=ambiguous, label="card", source="generated", soft_label={"card": 0.05, "transfer": 0.95})]
    hard = [Example(text=ambiguous, label="card", source="generated")]
    kd = student_settings(epochs=60, alpha=1.0, temperature=1.0)
    with_soft = make_student(LABELS, kd, "cpu")
    with_soft.fit(examples(TRAIN) + soft * 5, kd)
    with_hard = make_student(LABELS, kd, "cpu")
    with_hard.fit(examples(TRAIN) + hard * 5, kd)
    p_soft = with_soft.predict_proba([ambiguous])[0, 1]
    p_hard = with_hard.predict_proba([ambiguous])[0, 1]
    assert p_soft > p_hard + 0.3


def test_trainer_versions_and_redelivery(tmp_path, config):
    trainer = StudentTrainer(make_student(LABELS, config, "cpu"), config, tmp_path)
    seeds = examples(TRAIN)
    trainer.add(seeds)
    assert trainer.ready()  # version 0 trains on the seeds alone
    v0 = trainer.train_version()
    assert v0.version == 0 and v0.generated_seen == 0 and (tmp_path / "v0000" / "student.json").exists()
    assert trainer.add(seeds) == 0  # redelivered ids are ignored
    new = examples([("card is lost in the mail", "card")], "generated")
    trainer.add(new)
    assert not trainer.ready() and trainer.ready(flush=True)
    trainer.add(examples([("pay my rent by transfer", "transfer")], "generated"))
    v1 = trainer.train_version()
    assert v1.version == 1 and v1.examples_seen == 8 and v1.generated_seen == 2


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown student kind; known: .*encoder.*graph.*ngram"):
        student_settings(kind="nope")  # at config load, before anything starts
    with pytest.raises(ValueError, match="unknown student kind 'nope'"):  # and by the registry, for any other caller
        make_student(LABELS, student_settings().model_construct(kind="nope"), "cpu")


def test_training_stops_early_when_validation_loss_stalls(tmp_path):
    config = student_settings(epochs=400, early_stop_every=5, early_stop_patience=2)
    validation = [{"text": "is my card on its way", "label": "card"}, {"text": "move money to dad", "label": "transfer"}]
    trainer = StudentTrainer(make_student(LABELS, config, "cpu"), config, tmp_path, validation)
    trainer.add(examples(TRAIN))
    result = trainer.train_version()
    assert 10 <= result.epochs < 400 and result.validation_loss is not None
    no_validation = StudentTrainer(make_student(LABELS, config, "cpu"), config, tmp_path / "b")
    no_validation.add(examples(TRAIN))
    assert no_validation.train_version().epochs == 400


def test_finetuned_encoder_trains_and_ships_its_encoder(tmp_path):
    config = student_settings(finetune=True, epochs=3, finetune_lr=1e-4, lr=1e-2, batch_size=8)
    student = make_student(LABELS, config, "cpu")
    before = student.encoder.embeddings.word_embeddings.weight.detach().clone()
    student.fit(examples(TRAIN), config)
    assert not torch.equal(before, student.encoder.embeddings.word_embeddings.weight)  # the encoder itself trained
    folder = student.save(tmp_path / "ft")
    assert (folder / "encoder" / "config.json").exists()
    texts = ["has my card shipped", "transfer 20 dollars to John"]
    assert np.allclose(load_student(folder).predict_proba(texts), student.predict_proba(texts), atol=1e-5)


def test_a_version_replays_a_bounded_sample_of_old_examples(tmp_path):
    config = student_settings(kind="ngram", epochs=1, replay=3, min_new_examples=1)
    trainer = StudentTrainer(make_student(LABELS, config, "cpu"), config, tmp_path)
    trainer.add(examples(TRAIN))
    assert len(trainer.training_set()) == len(TRAIN)  # v0: everything is new
    trainer.train_version()
    new = examples([("is my card lost", "card"), ("pay my dad back", "transfer")], source="generated")
    trainer.add(new)
    batch = trainer.training_set()
    assert len(batch) == 3 + 2 and all(e in batch for e in new)
    unbounded = student_settings(kind="ngram", epochs=1, replay=None)
    trainer.config = unbounded
    assert len(trainer.training_set()) == len(TRAIN) + 2


def test_the_replay_keeps_each_class_share_when_the_new_batch_lacks_it():
    """A steered batch of one class must not push the other classes out of the replay (issue 27: a random replay
    let version 6 of a perfect-teacher run forget the classes its batch lacked)."""
    import random
    from collections import Counter

    from pgkd.student.trainer import replay_per_class

    old = [Example(text=f"a{i}", label="a", source="generated") for i in range(600)] + [
        Example(text=f"b{i}", label="b", source="generated") for i in range(400)]
    new = [Example(text=f"new{i}", label="a", source="generated") for i in range(500)]
    picked = replay_per_class(old, new, 400, random.Random(0))
    assert len(picked) == 400 and len({e.id for e in picked}) == 400 and {e.id for e in picked} <= {e.id for e in old}
    mix = Counter(e.label for e in picked + new)
    # every example so far: a 1100 of 1500, b 400 of 1500; the training set of 900 keeps b's share (240)
    assert mix["b"] == 240 and mix["a"] == 660
    randomly = Counter(e.label for e in random.Random(0).sample(old, 400))
    assert randomly["b"] < 200  # what the random replay gave b: its share of the old examples only
    short = replay_per_class(old[:600] + old[600:610], new, 400, random.Random(0))  # b is rare: its share
    assert len(short) == 400 and Counter(e.label for e in short)["b"] == 8  # 900 x 10 / 1110
    # a batch flooding one class beyond its share: the others' wants outgrow the replay and are scaled down (this
    # once asked random.sample for a negative count and failed the version)
    flooded = replay_per_class(old[:100] + old[600:], new * 3, 300, random.Random(0))
    assert len(flooded) == 300 and Counter(e.label for e in flooded) == {"b": 300}


def test_a_version_leaves_out_teacher_labels_the_student_is_sure_are_wrong(tmp_path):
    config = student_settings(kind="ngram", epochs=40, label_filter=0.2, min_new_examples=1)
    trainer = StudentTrainer(make_student(LABELS, config, "cpu"), config, tmp_path)
    trainer.add(examples(TRAIN))
    trainer.train_version()
    wrong = examples([("my card has not arrived yet", "transfer")], source="generated")  # a seed text, mislabelled
    right = examples([("has my new card arrived", "card")], source="generated")
    trainer.add(wrong + right)
    batch = trainer.training_set()
    assert right[0] in batch and wrong[0] not in batch and trainer.distrusted == 1
    assert len([e for e in batch if e.source == "seed"]) == len(TRAIN)  # seeds are never filtered
    trainer.config = student_settings(kind="ngram", label_filter=0.0)
    assert wrong[0] in trainer.training_set()  # 0 trusts every label
