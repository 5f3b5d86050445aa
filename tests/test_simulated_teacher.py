"""The simulated teacher (benchmarks only): its reservoir, its noise, its marking, and the config that refuses it
where it cannot work. Fast: a made-up embedding, no engine, no Ray."""
from pathlib import Path

import numpy as np
import pytest
import yaml

from pgkd.config import RunConfig, load_config

from pgkd.teacher.config import teacher_kind, teacher_settings
from pgkd.basics.errors import InputError
from pgkd.bus.messages import EvalReport, HardNegative
from pgkd.driver import prepare_inputs
from pgkd.finish import simulated_note
from pgkd.report import write_markdown
from pgkd.teacher.backends.simulated import SimulatedTeacher
from pgkd.teacher.seam import PoolText
from tests.conftest import write_dataset

REPO = Path(__file__).resolve().parents[1]
LABELS = ["a", "b", "c"]
# texts of class a spread from "near b" to "far from b"; b and c in their own corners
VECTORS = {**{f"a{i}": [1.0, i / 10, 0.0] for i in range(10)},
           **{f"b{i}": [0.0, 1.0, 0.01 * i] for i in range(10)},
           **{f"c{i}": [0.0, 0.01 * i, 1.0] for i in range(10)}}
RESERVOIR = [{"text": t, "label": t[0]} for t in VECTORS]


def embed(texts):
    return np.array([VECTORS.get(t, [0.0, 1.0, 0.0]) for t in texts])


def simulated(error_rate=0.0, allow_repeats=False, **teacher):
    steered_fully = {"classes_per_batch": 1, "examples_per_class": 3, "steer_share": 1.0, "boundary_share": 1.0}
    config = teacher_settings(backend="simulated", error_rate=error_rate, allow_repeats=allow_repeats,
                              **(steered_fully | teacher))
    return SimulatedTeacher(RESERVOIR, embed, LABELS, config, "teacher-0", seed=1)


def report(confusions=(), hard=()):
    return EvalReport(student="s", version=1, examples_seen=3, generated_seen=0, teacher_generated=0, accuracy=0.5,
                      macro_f1=0.5, per_class_f1={"a": 0.0, "b": 1.0, "c": 1.0}, confusion_pairs=list(confusions),
                      hard_negatives=list(hard), eval_seconds=0.1)


def test_unguided_it_writes_unseen_texts_of_the_planned_class_and_never_repeats():
    teacher = simulated()
    written, batch = [], 0
    while not teacher.done and batch < 20:
        examples, stats = teacher.write_batch(None, batch)
        assert stats.generated == stats.kept == len(examples)
        written, batch = written + examples, batch + 1
    assert all(e.label == e.intended_label == e.text[0] for e in written)
    assert len({e.text for e in written}) == len(written) == 30  # the whole reservoir, once each
    assert teacher.done


def test_a_spent_class_is_said_once_and_no_longer_written(caplog):
    teacher = simulated(examples_per_class=4)
    planned_a = report()  # steering: class a has F1 0, so it is planned first
    for _ in range(3):
        examples, stats = teacher.write_batch(planned_a)
    assert sum("reservoir of class 'a' is spent" in r.message for r in caplog.records) <= 1
    texts = [e.text for e in examples]
    assert len(set(texts)) == len(texts)
    assert "a" not in teacher._open_labels()


def test_asked_for_boundary_cases_it_returns_the_class_texts_closest_to_the_confused_class():
    teacher = simulated()
    examples, _ = teacher.write_batch(report(confusions=[("a", "b", 5)]))
    assert [e.text for e in examples] == ["a9", "a8", "a7"]  # a's texts nearest to b's centroid


def test_hard_negatives_pull_the_texts_closest_to_them():
    teacher = simulated()
    quoted = HardNegative(text="a2", label="a", predicted="b", confidence=0.9)
    examples, _ = teacher.write_batch(report(confusions=[("a", "b", 5)], hard=[quoted]))
    assert examples[0].text == "a2"


def test_error_rate_flips_that_share_of_labels_to_the_contrast_class():
    assert all(e.label == "b" for e in simulated(1.0).write_batch(report(confusions=[("a", "b", 1)]))[0])
    flipped = [e for e in simulated(1.0).write_batch(None)[0]]
    assert all(e.label != e.intended_label for e in flipped)  # no contrast: a random other class
    config = teacher_settings(backend="simulated", classes_per_batch=3, examples_per_class=10, error_rate=0.3)
    wrong = []
    for seed in range(20):
        examples, _ = SimulatedTeacher(RESERVOIR, embed, LABELS, config, "t", seed=seed).write_batch(None, 0)
        wrong += [e.label != e.intended_label for e in examples]
    assert 0.2 < np.mean(wrong) < 0.4


def test_pool_labels_are_gold_with_noise_and_the_wrong_ones_less_confident():
    teacher = simulated(0.3, min_confidence=0.0)
    pool = [PoolText(t, ["b", "a"]) for t in VECTORS] + [PoolText("never seen", ["a"])]
    examples, stats = teacher.write_batch(None, pool=pool)
    labelled = [e for e in examples if e.source == "pool"]
    assert stats.pool_offered == 31 and stats.dropped["pool_no_gold"] == 1 and stats.pool_labelled == 30
    right = [e.candidate_probs[e.label] for e in labelled if e.label == e.text[0]]
    wrong = [e.candidate_probs[e.label] for e in labelled if e.label != e.text[0]]
    assert wrong and np.mean(wrong) < np.mean(right)
    assert all(e.label == "b" for e in labelled if e.label != e.text[0] and e.text[0] != "b")  # the student's guess


def test_every_example_and_report_says_simulated(tmp_path):
    examples, _ = simulated().write_batch(None)
    assert examples and all(e.teacher == "teacher-0:simulated" for e in examples)
    config = RunConfig.model_validate({"dataset": {"path": "x"}, "teacher": {"backend": "simulated",
                                                                            "error_rate": 0.1}})
    note = simulated_note(config)
    assert note.startswith("simulated teacher (error_rate 0.1")
    report_dict = {"run_id": "r", "simulated_teacher": note, "stopped_by": {"reason": "user"}, "elapsed_seconds": 1,
                   "dataset": {"path": "x", "labels": 3, "seeds": 3, "validation": 3, "test": 3},
                   "teacher": {"totals": {"generated": 900, "kept": 900, "busy_seconds": 0.02}, "kept_ratio": 1.0,
                               "kept_per_busy_second": 45000.0, "cost_usd": 0, "dropped": {}}, "versions": []}
    text = write_markdown(report_dict, tmp_path).read_text()
    assert "**Teacher: simulated teacher (error_rate 0.1" in text
    # a reservoir read at a configured pace has no speed or cost worth printing (issue 27: "45000 per busy second")
    assert "kept 900" in text and "per busy second" not in text and "no tokens, cost or speed" in text
    assert simulated_note(RunConfig.model_validate({"dataset": {"path": "x"}})) is None


def test_repeats_only_when_allowed_and_then_marked():
    teacher = simulated(allow_repeats=False)
    for _ in range(12):
        teacher.write_batch(None)
    assert teacher.done
    repeating = simulated(allow_repeats=True)
    repeats = [e for _ in range(12) for e in repeating.write_batch(None)[0]]
    assert len(repeats) == 36 and not repeating.done
    assert sum("(repeated text)" in e.teacher for e in repeats) == 6


@pytest.mark.parametrize("override, field", [
    ("teacher.error_rate=1.5", "teacher.error_rate"),
    ("teacher.error_rate=-0.1", "teacher.error_rate"),
    ("teacher.seconds_per_example=-1", "teacher.seconds_per_example"),
    ("teacher.temperature=0.5", "teacher.temperature"),  # an LLM's setting: not one of the simulated teacher's
])
def test_bad_simulated_settings_are_refused_at_load(tmp_path, override, field):
    config = tmp_path / "run.yaml"
    config.write_text("dataset:\n  path: x\nteacher:\n  backend: simulated\n")
    with pytest.raises(InputError, match=f"field '{field}'"):
        load_config(config, [override])


def test_simulated_with_no_reservoir_left_is_refused_before_start(tiny_dataset, tmp_path):
    config = RunConfig.model_validate({"dataset": {"path": str(tiny_dataset), "seeds_per_class": 5},
                                       "teacher": {"backend": "simulated"}})
    with pytest.raises(InputError, match="field 'teacher.backend'") as error:
        prepare_inputs(config)
    assert "train.jsonl" in str(error.value)


def test_the_reservoir_is_the_train_rest_never_a_seed_or_evaluation_text(tmp_path):
    rows = {"train": [(f"card text {i}", "card") for i in range(6)] + [(f"money text {i}", "money") for i in range(6)]
            + [("shared with test", "card")],
            "validation": [(f"card val {i}", "card") for i in range(4)] + [(f"money val {i}", "money") for i in range(4)],
            "test": [("shared with test", "card"), ("money test", "money")]}
    data = write_dataset(tmp_path / "d", rows)
    config = RunConfig.model_validate({"dataset": {"path": str(data), "seeds_per_class": 2},
                                       "teacher": {"backend": "simulated"}})
    _, inputs = prepare_inputs(config)
    seeds = {r["text"] for r in inputs.seeds}
    reservoir = {r["text"] for r in inputs.reservoir}
    expected = 13 - len(seeds) - ("shared with test" not in seeds)  # every train text but seeds and test ones
    assert len(reservoir) == expected and not reservoir & seeds and "shared with test" not in reservoir
    steering, held = {r["text"] for r in inputs.validation}, {r["text"] for r in inputs.selection}
    assert len(held) == 4 and not steering & held  # half of each class held out to choose the best


def test_no_shipped_config_uses_the_simulated_teacher():
    for path in (REPO / "ray_configs").glob("*.yaml"):
        for data in yaml.safe_load_all(path.read_text()):
            teacher = data.get("teacher", {}) if isinstance(data, dict) else {}
            assert teacher.get("backend") != "simulated", path


def test_the_simulated_teacher_is_a_registered_backend_that_says_what_it_needs():
    """Built through the registry like any backend; the driver, actor and report ask it, never its name."""
    from pgkd.basics.dataset import Label
    from pgkd.teacher.factory import TeacherJob, make_teacher

    settings = teacher_settings(backend="simulated", error_rate=0.2, embedding="some-encoder")
    kind = teacher_kind(settings)
    assert kind is SimulatedTeacher and kind.needs_reservoir and not kind.audits
    assert kind.text_encoder(settings) == "some-encoder" and not settings.audited
    assert kind.probe(settings) is None and settings.in_process_dtype() is None
    job = TeacherJob([Label(name) for name in LABELS], [], [], "teacher-1", "x", replica=1, reservoir=RESERVOIR,
                     embed=embed)
    teacher = make_teacher(settings, job)
    assert isinstance(teacher, SimulatedTeacher) and teacher.model_name == "simulated(error_rate=0.2)"
    assert teacher.describe() == [] and teacher.notes() == [] and teacher.policy.min_confidence == 0.8
    llm = teacher_settings()
    assert teacher_kind(llm).audits and not teacher_kind(llm).needs_reservoir
    assert teacher_kind(llm).report_note(llm) is None
