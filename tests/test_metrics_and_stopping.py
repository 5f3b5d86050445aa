import pytest

from pgkd.evaluator.early_stopping import EarlyStopping
from pgkd.evaluator.metrics import accuracy, confusion_pairs, macro_f1, per_class_f1


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
    from pgkd.evaluator.early_stopping import RunStopping

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
    from pgkd.actors.metrics import record_teacher_batch

    record_teacher_batch("teacher-0", {"generated": 0, "kept": 0, "busy_seconds": 0})
    record_teacher_batch("teacher-0", {"generated": 4, "kept": 0, "busy_seconds": 0.5, "completion_tokens": 12})


def test_resampled_macro_f1_is_the_metric_on_each_resample():
    import numpy as np

    from pgkd.evaluator.selection import BestChoice

    rng = np.random.default_rng(3)
    labels = ["a", "b", "c", "d"]
    gold = [labels[i] for i in rng.integers(0, 3, 60)]  # "d" never in gold: not averaged over
    pred = [labels[i] for i in rng.integers(0, 4, 60)]
    choice = BestChoice(gold, labels, z=1.0, resamples=5)
    for sample, value in zip(choice.samples, choice._resampled_f1(pred)):
        assert value == pytest.approx(macro_f1([gold[i] for i in sample], [pred[i] for i in sample], labels))


def _candidate(key, version, gold, error, labels, seed):
    import numpy as np

    from pgkd.evaluator.selection import Candidate

    rng = np.random.default_rng(seed)
    pred = [g if rng.random() > error else labels[rng.integers(0, len(labels))] for g in gold]
    return Candidate(key, version, macro_f1(gold, pred, labels), pred)


def test_a_later_version_replaces_seeds_only_only_beyond_the_selection_noise():
    import numpy as np

    from pgkd.evaluator.selection import BestChoice

    labels = [f"l{i}" for i in range(20)]
    gold = [labels[i] for i in np.random.default_rng(0).integers(0, 20, 300)]
    base = _candidate("s@v0", 0, gold, 0.30, labels, 1)
    close = _candidate("s@v1", 1, gold, 0.29, labels, 1)  # nearly the same predictions: a hair better
    choice = BestChoice(gold, labels, z=1.0)
    choice.add(base)
    choice.add(close)
    if close.macro_f1 > base.macro_f1:
        decided = choice.choose()
        assert decided.best.key == "s@v0" and decided.reason.startswith("kept seeds-only")
    far = _candidate("s@v2", 2, gold, 0.05, labels, 2)
    choice.add(far)
    decided = choice.choose()
    assert decided.best.key == "s@v2" and decided.gain > decided.margin > 0
    assert BestChoice(gold, labels, z=0.0).choose() is None
    no_guard = BestChoice(gold, labels, z=0.0)
    no_guard.add(base)
    no_guard.add(close)
    assert no_guard.choose().best.key == max([base, close], key=lambda c: c.macro_f1).key


def test_validation_split_is_stratified_and_reproducible():
    from pgkd.basics.dataset import split_per_class

    rows = [{"text": f"{label}{i}", "label": label} for label in "abc" for i in range(10)] + [{"text": "d", "label": "d"}]
    rest, held = split_per_class(rows, 0.3, seed=4)
    assert sorted(r["label"] for r in held) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3  # d has one text: it steers
    assert split_per_class(rows, 0.3, seed=4) == (rest, held)
    assert not {r["text"] for r in rest} & {r["text"] for r in held}
    assert split_per_class(rows, 0, seed=4) == (rows, [])
