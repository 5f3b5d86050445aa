"""Pool labelling (active learning) and augmentation: the student's choice of uncertain texts, the queue on a real
redis-server, the teacher's batch with pool texts and paraphrases, and the driver's pool."""
import json
from dataclasses import replace

import numpy as np
import pytest

from pgkd.config import RunConfig
from pgkd.basics.errors import InputError
from pgkd.bus import pool_queue
from pgkd.bus.messages import PoolHint
from pgkd.driver import prepare_inputs
from pgkd.student.active import least_confident
from pgkd.teacher.seam import PoolText
from tests.test_teacher_logic import make_teacher


def test_least_confident_ranks_by_margin_and_skips_labelled():
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.5, 0.1, 0.4], [0.34, 0.33, 0.33]])
    picked = least_confident(probs, ["a", "b", "c"], 2, skip={3}, top=2)
    assert [(i, top) for i, _, top in picked] == [(1, ["a", "b"]), (2, ["a", "c"])]
    assert picked[0][1] == pytest.approx(0.95)


def hint(index, uncertainty, student="student-x-0"):
    return PoolHint(id=f"id{index}", text=f"text {index}", uncertainty=uncertainty, student=student, version=0,
                    top_labels=["a", "b"])


def test_queue_hands_out_most_uncertain_first_once(bus):
    assert pool_queue.offer(bus, [hint(1, 0.2), hint(2, 0.9), hint(3, 0.5)]) == 3
    pool_queue.offer(bus, [hint(1, 0.95, "student-y-0")])  # another student is less sure of text 1: it moves up
    first = pool_queue.claim(bus, 2)
    assert [h.id for h in first] == ["id1", "id2"] and first[0].student == "student-y-0"
    assert first[0].text == "text 1"  # the teacher needs no pool of its own
    assert [h.id for h in pool_queue.claim(bus, 5)] == ["id3"]
    assert pool_queue.claim(bus, 5) == []


def test_labelled_texts_are_never_offered_again(bus):
    pool_queue.mark_labelled(bus, ["id7"])
    assert pool_queue.offer(bus, [hint(7, 0.9), hint(8, 0.1)]) == 1
    assert [h.id for h in pool_queue.claim(bus, 5)] == ["id8"] and pool_queue.labelled_count(bus) == 1


def test_a_claimed_text_is_not_offered_again_until_its_claim_goes_stale(bus):
    pool_queue.offer(bus, [hint(4, 0.5)])
    pool_queue.claim(bus, 1)  # a teacher is labelling it now
    assert pool_queue.offer(bus, [hint(4, 0.6)]) == 0
    # the teacher died before mark_labelled: once the claim is stale the text is offered again
    assert pool_queue.offer(bus, [hint(4, 0.6)], claim_ttl_s=0) == 1 and pool_queue.queued(bus) == 1


def test_pool_texts_are_labelled_first_and_counted():
    teacher = make_teacher([None], prefers={"never arrived": "card arrival", "money back": "refund"})
    teacher.config.generate = False
    pool = [PoolText("the card never arrived at home", ["card_arrival", "lost_card"]),
            PoolText("send my money back now", ["top_up", "card_arrival"])]
    examples, stats = teacher.write_batch(None, 0, pool)
    by_text = {e.text: e for e in examples}
    assert by_text["the card never arrived at home"].label == "card_arrival"
    assert by_text["send my money back now"].label == "refund"  # a candidate the student had not guessed
    assert all(e.source == "pool" for e in examples)
    # kept counts what the batch publishes, as the archive does (finish.py once warned about a pool-only run)
    assert stats.pool_offered == 2 and stats.generated == 0 and stats.kept == stats.pool_labelled == 2


def test_unsure_pool_labels_are_dropped_and_counted():
    teacher = make_teacher([None], prefers={})
    teacher.config.generate = False
    examples, stats = teacher.write_batch(None, 0, [PoolText("something vague here", ["top_up", "refund"])])
    assert examples == [] and stats.dropped["pool_low_confidence"] == 1 and stats.pool_labelled == 0


def test_a_label_with_its_own_audit_threshold_is_held_to_it():
    pool = [PoolText("the card never arrived at home", ["card_arrival", "lost_card"]),
            PoolText("send my money back now", ["top_up", "card_arrival"])]
    teacher = make_teacher([None], prefers={"never arrived": "card arrival", "money back": "refund"})
    teacher.config.generate = False
    examples, _ = teacher.write_batch(None, 0, pool)
    confidence = {e.label: e.candidate_probs[e.label] for e in examples}
    teacher.follow(replace(teacher.policy, label_thresholds={"refund": confidence["refund"] + 0.01}))
    examples, stats = teacher.write_batch(None, 1, pool)
    assert [e.label for e in examples] == ["card_arrival"] and stats.dropped["pool_low_confidence"] == 1
    policy = teacher.policy
    assert policy.threshold("refund") > policy.threshold("card_arrival") == policy.min_confidence


def test_augmentation_rewords_seeds_and_generation_can_be_switched_off():
    teacher = make_teacher(["when will my card get here", "card arriving when"],
                           prefers={"get here": "card arrival", "arriving": "card arrival"})
    teacher.config.generate, teacher.config.augmentation, teacher.config.augment_per_class = False, True, 2
    examples, stats = teacher.write_batch(None, 0)
    prompts = teacher.backend.prompts
    assert len(prompts) == 1 and "where is my card" in prompts[0] and "reworded" in prompts[0]  # one seed exists
    assert stats.generated == stats.augmented == 1
    assert [e.source for e in examples] == ["augmented"]


@pytest.fixture
def pool_config(tiny_dataset):
    rows = [{"text": "my card is late again", "label": "card"}, {"text": "wire money abroad", "label": "transfer"},
            {"text": "where is my new card", "label": "card"}]  # a test text and a seed: never in the pool
    (tiny_dataset / "train.jsonl").open("a").write("".join(json.dumps(r) + "\n" for r in rows))

    def make(**dataset):
        return RunConfig.model_validate({"dataset": {"path": str(tiny_dataset), "seeds_per_class": 1, **dataset},
                                         "teacher": {"pool_labelling": True}})

    return make


def test_pool_from_train_keeps_hidden_labels_and_excludes_seeds_and_eval_texts(pool_config):
    _, inputs = prepare_inputs(pool_config(pool_from_train=True))
    seeds = {row["text"] for row in inputs.seeds}
    assert inputs.pool and not seeds & set(inputs.pool) and "wire money abroad" not in inputs.pool
    assert dict(zip(inputs.pool, inputs.pool_gold))["my card is late again"] == "card"


def test_pool_labelling_without_a_pool_is_refused(pool_config):
    with pytest.raises(InputError, match="unlabeled.jsonl"):
        prepare_inputs(pool_config())


def test_pool_strategies_rank_by_their_own_measure():
    from pgkd.student.active import most_uncertain

    probs = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [0.98, 0.01, 0.01], [0.6, 0.39, 0.01]])
    labels = ["a", "b", "c"]
    assert [i for i, _, _ in most_uncertain(probs, labels, 2, "margin")] == [0, 1]
    assert [i for i, _, _ in most_uncertain(probs, labels, 2, "entropy")] == [1, 3]  # the flattest rows
    assert [i for i, _, _ in most_uncertain(probs, labels, 4, "entropy", skip={1})] == [3, 0, 2]
    drawn = [i for i, _, _ in most_uncertain(probs, labels, 4, "random", seed=5)]
    assert sorted(drawn) == [0, 1, 2, 3] and drawn == [i for i, _, _ in most_uncertain(probs, labels, 4, "random", seed=5)]
    with pytest.raises(ValueError, match="unknown pool strategy"):
        most_uncertain(probs, labels, 1, "badge")


def test_diverse_margin_spreads_one_batch_over_different_confusions():
    """Ten near-identical a/b confusions with the smallest margins and a few b/c and a/c ones: margin offers only
    a/b texts; diverse_margin offers one of each confusion, least sure first within each."""
    from pgkd.student.active import most_uncertain

    ab = [[0.5 + d, 0.5 - d, 0.0] for d in np.linspace(0.0, 0.05, 10)]
    bc = [[0.0, 0.55, 0.45], [0.0, 0.57, 0.43]]
    ac = [[0.56, 0.0, 0.44], [0.58, 0.0, 0.42]]
    sure = [[0.98, 0.01, 0.01]] * 6
    probs = np.array(ab + bc + ac + sure)
    labels = ["a", "b", "c"]
    assert {i for i, _, _ in most_uncertain(probs, labels, 3, "margin")} <= set(range(10))
    picked = most_uncertain(probs, labels, 3, "diverse_margin", seed=1)
    assert len(picked) == 3 and sorted({tuple(top[:2]) for _, _, top in picked}) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert picked[0][0] == 0 and {10, 12} <= {i for i, _, _ in picked}  # the least sure of each confusion
    assert picked == most_uncertain(probs, labels, 3, "diverse_margin", seed=1)
    assert [i for i, _, _ in most_uncertain(probs, labels, 3, "diverse_margin", skip={0, 10})][0] == 1
    assert len(most_uncertain(probs[:2], labels, 3, "diverse_margin")) == 2  # fewer candidates than k: all of them


def test_a_labelling_only_teacher_waits_for_pool_texts_instead_of_drawing_empty_batches(bus):
    """Issue 27's runs: with `generate: false` and nothing offered, the teacher loop drew 27,197 empty batches in
    a 6-minute run, spinning on Redis beside the students. It must wait, then label what is offered. The actor's
    own loop, on a real redis-server, without Ray."""
    import threading
    import time

    from pgkd.actors.teacher_actor import BATCH_COUNTER, TeacherActor
    from pgkd.bus.client import EXAMPLES
    from pgkd.bus.control import request_stop, teacher_stats_key
    from pgkd.bus.messages import ExampleBatch
    from tests.test_simulated_teacher import simulated

    teacher = simulated(generate=False, pool_labelling=True, pool_per_batch=2)
    assert not teacher.writes_unprompted
    actor = TeacherActor.__ray_metadata__.modified_class.__new__(TeacherActor.__ray_metadata__.modified_class)
    actor.name, actor.bus, actor.config = "teacher-0", bus, teacher.config
    loop = threading.Thread(target=actor._loop, args=(teacher,), daemon=True)
    loop.start()
    time.sleep(1.5)
    assert bus.client.get(bus.key(BATCH_COUNTER)) is None  # no batch number drawn
    assert bus.get_fields("status:teacher-0")["state"] == "waiting for pool texts"
    pool_queue.offer(bus, [PoolHint(id="p1", text="a1", uncertainty=0.9, student="s", version=0, top_labels=["a"])])
    deadline = time.time() + 10
    while not bus.read_all(EXAMPLES, ExampleBatch) and time.time() < deadline:
        time.sleep(0.1)
    request_stop(bus, "user")
    loop.join(10)
    batches = bus.read_all(EXAMPLES, ExampleBatch)
    assert [e.text for b in batches for e in b.examples] == ["a1"] and not loop.is_alive()
    assert float(bus.get_fields(teacher_stats_key("teacher-0"))["batches"]) == 1


def test_in_rounds_the_teacher_writes_a_batch_only_once_the_last_one_is_trained_and_scored(bus):
    """loop.mode rounds, the paper's loop: the first batch waits for the seeds-only scores, and each next one for a
    scored version that trained on every example this teacher published. The actor's own loop, on a real
    redis-server, without Ray."""
    import threading
    import time

    from pgkd.actors.teacher_actor import TeacherActor
    from pgkd.bus.client import EXAMPLES, REPORTS
    from pgkd.bus.control import request_stop, set_loop_mode
    from pgkd.bus.messages import ExampleBatch
    from pgkd.bus.roster import register_actor
    from tests.test_simulated_teacher import report, simulated

    def batches():
        return bus.read_all(EXAMPLES, ExampleBatch)

    def wait_for(condition, seconds=10):
        deadline = time.time() + seconds
        while not condition() and time.time() < deadline:
            time.sleep(0.05)

    set_loop_mode(bus, "rounds")
    register_actor(bus, "student", "student-a")
    teacher = simulated(allow_repeats=True)
    actor = TeacherActor.__ray_metadata__.modified_class.__new__(TeacherActor.__ray_metadata__.modified_class)
    actor.name, actor.bus, actor.config = "teacher-0", bus, teacher.config
    loop = threading.Thread(target=actor._loop, args=(teacher,), daemon=True)
    loop.start()
    time.sleep(1.0)
    assert batches() == [] and bus.get_fields("status:teacher-0")["state"] == "waiting for the round's scores"
    bus.publish(REPORTS, report().model_copy(update={"student": "student-a", "version": 0}))
    wait_for(lambda: len(batches()) == 1)
    time.sleep(1.0)
    assert len(batches()) == 1  # trained on, not yet scored: no second batch
    written = len(batches()[0].examples)
    bus.publish(REPORTS, report().model_copy(update={"student": "student-a", "version": 1,
                                                       "generated_seen": written - 1}))  # an older version's
    time.sleep(1.0)
    assert len(batches()) == 1
    bus.publish(REPORTS, report().model_copy(update={"student": "student-a", "version": 2,
                                                       "generated_seen": written}))
    wait_for(lambda: len(batches()) == 2)
    request_stop(bus, "user")
    loop.join(10)
    assert len(batches()) == 2 and not loop.is_alive()  # a stop while it waits writes nothing more
