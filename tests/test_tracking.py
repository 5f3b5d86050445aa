"""Tracking's parts without a run: the config's params, the outbox that gives up instead of holding the run,
the refusal of a missing mlflow, and the MLflow backend's idempotence against a real SQLite store."""
import importlib.util
import threading
import time

import pytest

from pgkd.basics.errors import InputError
from pgkd.tracking.base import Point
from pgkd.tracking.outbox import Outbox


def test_params_are_the_config_flattened_with_every_url_redacted(tmp_path):
    from pgkd.config import validate_config
    from pgkd.track import flat_params

    config = validate_config({"dataset": {"path": str(tmp_path)}, "redis": {"url": "redis://:s3cret@10.0.0.5:6379/0"},
                              "students": [{"name": "a", "kind": "ngram"}, {"name": "b"}],
                              "tracking": {"uri": "https://bob:hunter2@mlflow.example:443"}})
    params = flat_params(config)
    assert params["students.0.kind"] == "ngram" and params["students.1.name"] == "b"
    assert params["redis.url"] == "redis://***@10.0.0.5:6379/0" and "hunter2" not in str(params)
    assert "s3cret" not in str(params) and all(len(v) <= 6000 for v in params.values())


def test_a_call_that_keeps_failing_gives_tracking_up_once_and_drops_the_rest():
    said, made = [], []

    def failing():
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    box = Outbox(attempts=3, retry_wait_s=0.01, on_lost=said.append)
    box.put("opening the tracking run", failing)
    box.put("sending figures", lambda: made.append(1))
    assert box.flush(5)
    box.put("sending more", lambda: made.append(2))
    assert box.close(5)
    assert made == [] and len(said) == 1
    assert said[0] == box.lost == "opening the tracking run failed 3 times: ConnectionRefusedError: Connection refused"


def test_a_call_that_fails_once_is_retried_and_the_order_is_kept():
    tries, made = [], []

    def flaky():
        tries.append(1)
        if len(tries) == 1:
            raise TimeoutError("read timed out")
        made.append("first")

    box = Outbox(attempts=3, retry_wait_s=0.01)
    box.put("flaky", flaky)
    box.put("second", lambda: made.append("second"))
    assert box.close(5) and box.lost is None and made == ["first", "second"] and box.sent == 2


def test_a_hung_server_never_holds_the_caller():
    release = threading.Event()
    box = Outbox(attempts=1, retry_wait_s=0)
    box.put("hangs", release.wait)
    started = time.time()
    box.put("after", lambda: None)
    assert not box.flush(0.2) and time.time() - started < 2  # the driver's wait is bounded; the run goes on
    release.set()
    assert box.close(5)


def test_mlflow_backend_without_the_package_is_refused_at_load_with_the_install_command(tmp_path, monkeypatch):
    from pgkd.config import load_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    (tmp_path / "run.yaml").write_text(f"dataset: {{path: {tmp_path}}}\ntracking:\n  backend: mlflow\n")
    with pytest.raises(InputError) as caught:
        load_config(tmp_path / "run.yaml")
    message = str(caught.value)
    assert "run.yaml:3" in message and "tracking.backend" in message and "pip install 'pgkd[mlflow]'" in message


def test_the_mlflow_backend_continues_its_run_and_doubles_nothing_sent_twice(tmp_path):
    pytest.importorskip("mlflow")
    from pgkd.tracking.config import TrackingConfig
    from pgkd.tracking.mlflow_backend import MLflowTracker

    first = MLflowTracker(TrackingConfig(backend="mlflow"), tmp_path)
    first.open("run-a", {"pgkd.dataset": "demo"})
    first.log_params({"loop.patience": "3", "teacher.max_batches": "8"})
    points = [Point("s/steering_macro_f1", 0.5, 0, 1_700_000_000_000), Point("s/steering_macro_f1", 0.6, 1, 1_700_000_001_000)]
    first.log_points(points)
    again = MLflowTracker(TrackingConfig(backend="mlflow"), tmp_path)  # a resumed session, a new process
    again.open("run-a", {"pgkd.dataset": "demo"})
    assert again.run_id == first.run_id and again.started_ms == first.started_ms
    assert again.log_params({"loop.patience": "3", "teacher.max_batches": "20"}) == ["teacher.max_batches"]
    again.log_points(points + [Point("s/steering_macro_f1", 0.7, 2, 1_700_000_002_000)])
    history = again.client.get_metric_history(again.run_id, "s/steering_macro_f1")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.5), (1, 0.6), (2, 0.7)]
    run = again.client.get_run(again.run_id)
    assert run.data.params["teacher.max_batches"] == "8"  # MLflow params never change: the tag says which did
    assert run.data.tags["pgkd.params_changed_on_resume"] == "teacher.max_batches"
    assert (tmp_path / "mlflow.db").is_file() and again.where()["uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_the_driver_sends_each_version_the_teacher_and_the_audit_once_however_often_it_polls(bus, tmp_path):
    """RunTracking against a real bus and a real SQLite MLflow store: what actors wrote to Redis reaches the run."""
    pytest.importorskip("mlflow")
    from pgkd.bus.client import CHECKPOINTS, REPORTS, SELECTION
    from pgkd.bus.control import TEACHER_AUDIT, teacher_stats_key
    from pgkd.bus.messages import Checkpoint, EvalReport, SelectionScore, TeacherAudit
    from pgkd.bus.roster import teacher_names
    from pgkd.config import validate_config
    from pgkd.track import RunTracking

    config = validate_config({"dataset": {"path": str(tmp_path)}, "runs_dir": str(tmp_path / "runs"),
                              "teacher": {"backend": "simulated"}, "tracking": {"backend": "mlflow"}})
    for version, f1 in ((0, 0.5), (1, 0.7)):
        common = dict(student="s-0", version=version)
        bus.publish(REPORTS, EvalReport(**common, examples_seen=10 + version, generated_seen=version,
                                        teacher_generated=version, accuracy=f1, macro_f1=f1, per_class_f1={},
                                        confusion_pairs=[], hard_negatives=[], eval_seconds=0.1))
        bus.publish(SELECTION, SelectionScore(**common, macro_f1=f1 - 0.1, accuracy=f1, predictions=[]))
        bus.publish(CHECKPOINTS, Checkpoint(**common, path="/x", examples_seen=10, generated_seen=0, train_seconds=2.5))
    bus.client.hset(bus.key(teacher_stats_key(teacher_names(config)[0])), mapping={"generated": 40, "kept": 30})
    bus.set_once(TEACHER_AUDIT, TeacherAudit(texts=20, candidates=4, accuracy=0.9, macro_f1=0.88, ece=0.05,
                                             target_precision=0.9, threshold=0.6, precision_at_threshold=0.93,
                                             kept_share=0.8, reliability=[{"bin": 0.9, "accuracy": 0.92}]))
    lines = []
    tracking = RunTracking(config, "poll-run", lines.append)
    for _ in range(3):
        tracking.poll(bus, force=True)
    assert tracking.outbox.close(30) and tracking.outbox.lost is None and lines == []
    client, run_id = tracking.tracker.client, tracking.tracker.run_id
    steps = lambda key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))  # noqa: E731
    assert steps("s-0/steering_macro_f1") == [(0, 0.5), (1, 0.7)]
    assert steps("s-0/selection_macro_f1") == [(0, 0.4), (1, pytest.approx(0.6))]
    assert steps("s-0/train_seconds") == [(0, 2.5), (1, 2.5)]
    assert [v for _, v in steps("teacher/generated")] == [40.0] and steps("teacher/kept_ratio")[0][1] == 0.75
    assert steps("audit/accuracy") == [(0, 0.9)] and steps("audit/threshold") == [(0, 0.6)]
    assert {a.path for a in client.list_artifacts(run_id)} == {"audit.json"}
