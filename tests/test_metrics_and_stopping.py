import pytest

from evaluator.early_stopping import EarlyStopping
from evaluator.metrics import accuracy, confusion_pairs, macro_f1, per_class_f1


def test_macro_f1_matches_hand_computation():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    f1 = per_class_f1(gold, pred, ["a", "b", "c"])
    assert f1 == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0})
    assert macro_f1(gold, pred, ["a", "b", "c"]) == pytest.approx(1.3 / 3)
    assert accuracy(gold, pred) == pytest.approx(0.6)
    assert confusion_pairs(gold, pred)[0] in {("a", "b", 1), ("c", "a", 1)}


def test_macro_f1_averages_over_present_classes_only():
    assert macro_f1(["a", "a"], ["a", "a"], ["a", "b"]) == 1.0


def test_early_stopping_counts_versions_without_min_delta_gain():
    stop = EarlyStopping(patience=2, min_delta=0.01)
    assert stop.update(0.50, "v0") and not stop.should_stop
    assert stop.update(0.505, "v1")  # a new best, but below min_delta: patience still counts
    assert stop.best_key == "v1" and stop.since_improvement == 1 and not stop.should_stop
    assert not stop.update(0.49, "v2")
    assert stop.should_stop and stop.best == 0.505


def test_early_stopping_resets_on_real_gain():
    stop = EarlyStopping(patience=2, min_delta=0.01)
    stop.update(0.5, "v0")
    stop.update(0.5, "v1")
    stop.update(0.6, "v2")
    assert stop.since_improvement == 0 and stop.best_key == "v2"


def test_run_stops_only_when_every_student_ran_out_of_patience():
    from evaluator.early_stopping import RunStopping

    stop = RunStopping(patience=2, min_delta=0.01, students=["strong", "weak"])
    assert stop.update("strong", 1.0, "strong@v0")
    for version, score in enumerate([0.5, 0.6, 0.7]):
        stop.update("weak", score, f"weak@v{version}")
    stop.update("strong", 1.0, "strong@v1")
    stop.update("strong", 1.0, "strong@v2")
    assert not stop.should_stop  # the weak student is still improving
    stop.update("weak", 0.7, "weak@v3")
    stop.update("weak", 0.7, "weak@v4")
    assert stop.should_stop and stop.best_key == "strong@v0" and stop.seen == 8


def test_a_teacher_batch_that_kept_nothing_records_without_error():
    """Ray's Counter.inc(0) raises ValueError; a batch with 0 kept once crashed its teacher actor."""
    from actors.metrics import record_teacher_batch

    record_teacher_batch("teacher-0", {"generated": 0, "kept": 0, "busy_seconds": 0})
    record_teacher_batch("teacher-0", {"generated": 4, "kept": 0, "busy_seconds": 0.5, "completion_tokens": 12})
