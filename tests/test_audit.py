"""The teacher audit's figures and the threshold it picks, on labels whose truth is known."""
import pytest

from pgkd.teacher.audit import (
    audit_sample,
    candidate_sets,
    expected_calibration_error,
    precision_threshold,
    reliability_table,
    summarize,
)


def test_sample_is_stratified_capped_and_the_same_for_every_replica():
    rows = [{"text": f"{label}{i}", "label": label} for label in "abc" for i in range(10)]
    sample = audit_sample(rows, per_class=3, cap=100, seed=1)
    assert sorted(r["label"] for r in sample) == list("aaabbbccc")
    assert sample == audit_sample(rows, 3, 100, 1) and len(audit_sample(rows, 3, 5, 1)) == 5
    assert sorted(r["label"] for r in sample[:3]) == list("abc")  # any prefix covers the labels evenly
    assert sorted(r["label"] for r in sample[3:6]) == list("abc")


def test_the_audit_budget_is_sixty_seconds_or_five_percent_of_the_run():
    from pgkd.teacher.audit import audit_budget

    assert audit_budget(None, 600) == 60 and audit_budget(None, 3600) == 180 and audit_budget(None, None) == 60
    assert audit_budget(20, 3600) == 20  # the user's value wins


def test_a_slow_teacher_audits_what_fits_in_its_budget_and_says_so():
    """A teacher whose labelling is slow (many labels, long prompts) stops within its budget: the decision names
    how many texts and labels it covered, and the seeds-only student is compared on those texts alone."""
    import time

    import numpy as np

    from pgkd.teacher.audit import LABELLING_SHARE, SeedsOnly, audit_sample, run_audit
    from pgkd.teacher.config import teacher_settings
    from pgkd.teacher.teacher import Teacher
    from tests.scripted_backend import ScriptedBackend
    from tests.test_teacher_logic import DEMOS, LABELS

    seeds = [{"text": t, "label": label} for label, texts in DEMOS.items() for t in texts]
    config = teacher_settings(soft_label_candidates=4, pool_labelling=True)
    teacher = Teacher(ScriptedBackend([], prefers={"stolen": "lost card"}), LABELS, seeds, [], config, "t", "x")
    score = teacher.labeler.score

    def slow(texts, sets):  # 0.05 s a text
        time.sleep(0.05 * len(texts))
        return score(texts, sets)

    teacher.labeler.score = slow
    names = [label.name for label in LABELS]
    rows = audit_sample([{"text": f"text {label} {i}", "label": label} for label in names for i in range(20)],
                        20, 400, 0)
    waits = []

    def student(wait_s):
        waits.append(wait_s)
        return SeedsOnly("s-v0", names, np.full((len(rows), len(names)), 1 / len(names)))

    started = time.monotonic()
    decided = run_audit(teacher, rows, config, student, budget_s=4)
    assert time.monotonic() - started <= 4.0
    covered = decided.texts + decided.unscored
    assert 8 <= covered < len(rows) and decided.seconds <= LABELLING_SHARE * 4
    assert decided.offered == len(rows) and decided.labels_covered == decided.labels_total == len(names)
    assert 0 < waits[0] <= 4 - decided.seconds
    assert decided.student_accuracy is not None
    line = next(d for d in decided.decisions if "within its budget" in d)
    assert f"labelled {covered} of its {len(rows)} texts" in line
    whole = run_audit(teacher, rows[:8], config, student, budget_s=60)
    assert not any("within its budget" in d for d in whole.decisions)  # all covered: nothing to say


def test_candidates_hold_the_gold_label_and_every_label_when_few():
    sets = candidate_sets(["a", "b"], list("abcdefgh"), 4, seed=0)
    assert all(len(s) == 4 and gold in s for s, gold in zip(sets, "ab"))
    assert candidate_sets(["a"], list("abc"), 4, 0) == [["a", "b", "c"]]


def test_threshold_is_the_lowest_confidence_that_reaches_the_target_precision():
    confidences = [0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    correct = [True, True, True, True, True, False, True, False, False, False]
    threshold, precision, kept = precision_threshold(confidences, correct, 0.85)
    assert threshold == 0.5 and precision == pytest.approx(6 / 7) and kept == pytest.approx(0.7)
    assert precision_threshold(confidences, correct, 1.0)[0] == 0.7  # five right in a row, the fewest allowed
    assert precision_threshold(confidences[:4], correct[:4], 0.9) == (None, None, 0.0)  # under 5 labels: no evidence
    # ties are kept or dropped together
    assert precision_threshold([0.5] * 6, [True] * 5 + [False], 0.9) == (None, None, 0.0)


def test_ece_and_reliability_of_a_calibrated_and_an_overconfident_teacher():
    confidences = [0.75] * 8
    assert expected_calibration_error(confidences, [True] * 6 + [False] * 2) == pytest.approx(0.0)
    assert expected_calibration_error(confidences, [True] * 2 + [False] * 6) == pytest.approx(0.5)
    table = reliability_table([0.15, 0.92, 0.97], [False, True, False])
    assert [(r["bin"], r["count"], r["accuracy"]) for r in table] == [("0.1-0.2", 1, 0.0), ("0.9-1.0", 2, 0.5)]


def test_summary_counts_unscored_texts_and_scores_the_rest():
    audit = summarize(["a", "a", "b", "b", "c"], ["a", "b", "b", "b", None], [0.9, 0.6, 0.8, 0.7, None], 3, 0.9)
    assert audit.texts == 4 and audit.unscored == 1 and audit.accuracy == pytest.approx(0.75)
    assert audit.per_class_f1 == pytest.approx({"a": 2 / 3, "b": 0.8, "c": 0.0})
    assert audit.macro_f1 == pytest.approx((2 / 3 + 0.8) / 3)


# ---- the run's decisions
def audit(**changes):
    from pgkd.bus.messages import TeacherAudit

    base = dict(texts=40, candidates=4, accuracy=0.8, macro_f1=0.78, ece=0.05, target_precision=0.9, threshold=0.62,
                precision_at_threshold=0.91, kept_share=0.55, best_threshold=0.8, best_precision=0.97,
                student_accuracy=0.7, student_macro_f1=0.68)
    return TeacherAudit(**(base | changes))


def test_decisions_follow_the_audit_and_what_the_user_set():
    from pgkd.teacher.config import teacher_settings
    from pgkd.teacher.audit import DEFAULT_MIN_CONFIDENCE, decide

    config = teacher_settings(pool_labelling=True)
    d = decide(audit(), config)
    assert (d.min_confidence, d.pool_labelling, d.soft_labels) == (0.62, True, True)
    assert "0.620" in d.decisions[0] and "91%" in d.decisions[0]
    assert decide(audit(), teacher_settings(min_confidence=0.3)).min_confidence == 0.3  # the user's value wins
    unreachable = decide(audit(threshold=None, precision_at_threshold=None), config)
    assert unreachable.min_confidence == 0.8 and "no confidence reaches 90%" in unreachable.decisions[0]
    assert decide(audit(threshold=None, best_threshold=None), config).min_confidence == DEFAULT_MIN_CONFIDENCE

    worse = decide(audit(accuracy=0.45, student_accuracy=0.85, precision_at_threshold=0.8), config)
    assert (worse.pool_labelling, worse.soft_labels) == (False, False)
    assert "worse than the seeds-only student (0.45 vs 0.85" in worse.decisions[1]
    # worse overall, but the labels it keeps (above its audit-chosen threshold) beat the student: pool stays on
    precise = decide(audit(accuracy=0.7, student_accuracy=0.85, precision_at_threshold=0.92), config)
    assert (precise.pool_labelling, precise.soft_labels) == (True, False) and "right 92% of the time" in \
        precise.decisions[1]
    assert not decide(audit(accuracy=0.7, student_accuracy=0.85, precision_at_threshold=0.92),
                      teacher_settings(pool_labelling=True, min_confidence=0.5)).pool_labelling  # the user's: unmeasured
    trusting = teacher_settings(pool_labelling=True, protect_student=False)
    kept = decide(audit(accuracy=0.45, student_accuracy=0.85), trusting)
    assert (kept.pool_labelling, kept.soft_labels) == (True, True)
    assert decide(audit(student_accuracy=None), config).pool_labelling  # nothing to compare with: no verdict
    uncalibrated = decide(audit(ece=0.3), config)
    assert uncalibrated.pool_labelling and not uncalibrated.soft_labels and "0.300" in uncalibrated.decisions[-1]


def test_teacher_audits_on_known_labels_and_follows_the_decisions():
    from pgkd.teacher.config import teacher_settings
    from pgkd.teacher.audit import decide
    from pgkd.teacher.teacher import Teacher
    from tests.scripted_backend import ScriptedBackend
    from tests.test_teacher_logic import DEMOS, LABELS

    seeds = [{"text": t, "label": label} for label, texts in DEMOS.items() for t in texts]
    backend = ScriptedBackend(["my card never came at all"],
                              prefers={"never": "card arrival", "stolen": "lost card", "cash": "top up"})
    config = teacher_settings(classes_per_batch=1, examples_per_class=1, min_words=2, soft_label_candidates=4,
                           pool_labelling=True)
    teacher = Teacher(backend, LABELS, seeds, [], config, "teacher-0", "Customer messages")
    rows = [{"text": f"it never arrived {i}", "label": "card_arrival"} for i in range(4)]
    rows += [{"text": f"my card was stolen {i}", "label": "lost_card"} for i in range(4)]
    rows += [{"text": f"please give it back {i}", "label": "refund"} for i in range(4)]  # the model has no idea
    result = teacher.audit(rows)
    assert result.texts == 12 and result.candidates == 4
    assert result.per_class_f1["lost_card"] == 1.0 and result.per_class_f1["refund"] == 0.0
    assert result.accuracy == pytest.approx(8 / 12) and result.unscored == 0
    assert teacher.policy.min_confidence == 0.8  # until it follows a decision
    decided = decide(result.model_copy(update={"student_accuracy": 1.0}), config)
    teacher.follow(teacher.policy.following(decided))
    assert teacher.policy.min_confidence == decided.min_confidence and teacher.policy.soft_labels is False
    assert teacher.policy.pool_labelling is False  # what the actor reads before it claims pool texts
    assert config.pool_labelling  # the decision is the teacher's state; its settings stay as configured
    examples, _ = teacher.write_batch(None)
    assert all(e.soft_label is None for e in examples)


def test_run_audit_compares_with_the_seeds_only_student_and_decides_in_one_place():
    """What a run's auditing replica and `pgkd audit` both call: the teacher's labels, the student's on the same
    texts and candidates, and the decision from both."""
    import numpy as np

    from pgkd.teacher.audit import LabelPolicy, SeedsOnly, run_audit
    from pgkd.teacher.config import teacher_settings
    from pgkd.teacher.teacher import Teacher
    from tests.scripted_backend import ScriptedBackend
    from tests.test_teacher_logic import DEMOS, LABELS

    seeds = [{"text": t, "label": label} for label, texts in DEMOS.items() for t in texts]
    config = teacher_settings(soft_label_candidates=4, pool_labelling=True)
    teacher = Teacher(ScriptedBackend([], prefers={"stolen": "lost card"}), LABELS, seeds, [], config, "t", "x")
    rows = [{"text": f"my card was stolen {i}", "label": "lost_card"} for i in range(6)]
    names = [label.name for label in LABELS]
    perfect = np.array([[float(name == "lost_card") for name in names]] * len(rows))
    decided = run_audit(teacher, rows, config, lambda _wait: SeedsOnly("s-v0", names, perfect), 60)
    assert decided.student == "s-v0" and decided.student_accuracy == 1.0 and decided.accuracy == 1.0
    assert decided.decisions and decided.min_confidence is not None
    alone = run_audit(teacher, rows, config, lambda _wait: None, 60)
    assert alone.student is None and alone.student_accuracy is None
    # a published decision can turn pool labelling off, never on
    off = LabelPolicy(0.8, pool_labelling=False)
    assert not off.following(decided).pool_labelling
    assert LabelPolicy(0.8, True).following(decided.model_copy(update={"pool_labelling": False})).pool_labelling is False


def test_too_small_a_steering_part_is_refused_with_the_numbers(tmp_path, tiny_dataset):
    import pgkd.driver
    from pgkd.config import load_config
    from pgkd.basics.errors import InputError

    path = tmp_path / "run.yaml"
    path.write_text(f"dataset:\n  path: {tiny_dataset}\n  seeds_per_class: 1\nteacher:\n  audit_per_class: 3\n")
    with pytest.raises(InputError, match=r"audit_per_class=3 .* 2 of 2 classes have fewer \('card' 1") as caught:
        pgkd.driver.prepare_inputs(load_config(path))
    assert caught.value.field == "teacher.audit_per_class" and "validation.jsonl" in str(caught.value)
    path.write_text(f"dataset:\n  path: {tiny_dataset}\n  seeds_per_class: 1\n")  # default: what there is
    _, inputs = pgkd.driver.prepare_inputs(load_config(path))
    assert sorted(row["label"] for row in inputs.audit) == ["card", "transfer"]


def test_a_label_the_teacher_gives_too_freely_gets_its_own_higher_threshold():
    from pgkd.teacher.config import teacher_settings
    from pgkd.teacher.audit import decide, summarize

    # "World" is given to 10 World texts (right, confidence 0.50-0.59) and 10 Business texts (wrong, 0.45-0.54);
    # "Sports" is right 10 times at 0.50-0.59. Overall 0.54 reaches 90%; World's own labels need 0.55.
    golds = ["World"] * 10 + ["Business"] * 10 + ["Sports"] * 10
    predictions = ["World"] * 20 + ["Sports"] * 10
    confidences = [round(start + i / 100, 2) for start in (0.5, 0.45, 0.5) for i in range(10)]
    audit = summarize(golds, predictions, confidences, 4, 0.9)
    world, sports = audit.label_thresholds["World"], audit.label_thresholds["Sports"]
    assert world["threshold"] > audit.threshold > sports["threshold"] and world["precision"] >= 0.9
    assert (world["labels"], sports["labels"]) == (20, 10)
    decided = decide(audit, teacher_settings())
    assert decided.label_thresholds == audit.label_thresholds and any("per label the teacher gives" in d for d in decided.decisions)
    assert decide(audit, teacher_settings(per_label_thresholds=False)).label_thresholds == {}
    assert decide(audit, teacher_settings(min_confidence=0.5)).label_thresholds == {}  # the user's value wins


def test_a_replica_writes_under_the_safest_policy_until_the_runs_audit_is_decided(bus):
    """Replicas after the auditing one do not wait for its audit: they keep only their surest labels, hard, and
    leave pool texts alone, then follow the audit as soon as it is on the bus."""
    from pgkd.actors.teacher_actor import TeacherActor
    from pgkd.bus.control import TEACHER_AUDIT
    from pgkd.teacher.audit import SAFEST_CONFIDENCE
    from pgkd.teacher.config import teacher_settings
    from pgkd.teacher.teacher import Teacher
    from tests.scripted_backend import ScriptedBackend
    from tests.test_teacher_logic import DEMOS, LABELS

    seeds = [{"text": t, "label": label} for label, texts in DEMOS.items() for t in texts]
    config = teacher_settings(soft_label_candidates=4, pool_labelling=True)
    teacher = Teacher(ScriptedBackend([]), LABELS, seeds, [], config, "teacher-1", "x")
    actor = TeacherActor.__ray_metadata__.modified_class.__new__(TeacherActor.__ray_metadata__.modified_class)
    actor.name, actor.bus, actor.config, actor.replica = "teacher-1", bus, config, 1
    actor.audit_rows = [{"text": "my card was stolen", "label": "lost_card"}]
    actor._follow_audit(teacher)  # returns at once: replica 1 does not audit
    policy = teacher.policy
    assert policy.min_confidence == SAFEST_CONFIDENCE and not policy.pool_labelling and not policy.soft_labels
    assert not actor._audit_arrived(teacher)
    bus.set_once(TEACHER_AUDIT, audit(min_confidence=0.62, pool_labelling=True, soft_labels=True))
    assert actor._audit_arrived(teacher)
    assert teacher.policy.min_confidence == 0.62 and teacher.policy.pool_labelling and teacher.policy.soft_labels
