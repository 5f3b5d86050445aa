"""Tracking and serving where ML teams look, in real runs: the Python API runs the demo config with overrides (the
simulated teacher: a measuring instrument, no model), the MLflow run in a local SQLite store holds the params, a
point per scored version, the artifacts and the student as a pyfunc model, which predicts what `pgkd predict` does
and answers HTTP under `mlflow models serve`. A tracking server that refuses connections costs one warning line.
About 60 s on 2 cores."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pgkd

mlflow = pytest.importorskip("mlflow")
REPO = Path(__file__).resolve().parents[1]
TEXTS = ["I lost my card", "how do I change my pin", "my transfer did not arrive"]


def overrides(runs: Path, **more) -> dict:
    return {"runs_dir": str(runs), "dataset.seeds_per_class": 2, "teacher.backend": "simulated",
            "teacher.error_rate": 0.0, "teacher.max_batches": 12,
            "students": [{"name": "ngram", "kind": "ngram", "min_new_examples": 6}],
            "loop.time_budget_s": 120, "loop.poll_interval_s": 0.3, "ray.dashboard": False,
            "tracking.backend": "mlflow", "tracking.every_s": 1} | more


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.integration
def test_the_python_api_runs_the_demo_config_into_mlflow_and_the_logged_student_serves(tmp_path):
    from mlflow.tracking import MlflowClient

    lines: list[str] = []
    first = pgkd.run(REPO / "ray_configs" / "demo.yaml", run_id="tracked", progress=lines.append,
                     overrides=overrides(tmp_path / "runs", **{"tracking.register_as": "demo-intents"}))
    assert first["best_student"] and first["simulated_teacher"] and first["tracking"]["state"] == "ok"
    # a second session continues the same MLflow run: its history again, nothing doubled, a new model version
    report = pgkd.resume("tracked", tmp_path / "runs", {"teacher.max_batches": 18}, progress=lines.append)
    assert len(report["versions"]) > len(first["versions"])
    where = report["tracking"]
    assert where["run_id"] == first["tracking"]["run_id"]
    assert where["state"] == "ok" and where["uri"] == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    client = MlflowClient(where["uri"], registry_uri=where["uri"])
    run = client.get_run(where["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    assert run.data.params["students.0.kind"] == "ngram" and run.data.params["teacher.backend"] == "simulated"
    assert run.data.tags["pgkd.simulated_teacher"] == "true" and run.data.tags["pgkd.dataset"] == "demo_bank"
    for student in {v["student"] for v in report["versions"]}:  # one point per scored version, the same figures
        history = client.get_metric_history(run.info.run_id, f"{student}/steering_macro_f1")
        assert sorted((m.step, m.value) for m in history) == sorted(
            (v["version"], v["macro_f1"]) for v in report["versions"] if v["student"] == student)
    assert run.data.metrics["best/test_macro_f1"] == report["best_student"]["test"]["macro_f1"]
    assert run.data.metrics["teacher/generated"] > 0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "learning_curve.png", "report.json", "report.md"} <= artifacts
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "report.json", str(tmp_path))).read_text())
    assert logged["tracking"]["run_id"] == run.info.run_id  # the report sent last says where it is
    assert sum(line.startswith("tracking: mlflow run ") for line in lines) == 2
    versions = client.search_model_versions("name='demo-intents'")
    assert sorted(int(v.version) for v in versions) == [1, 2] and {v.run_id for v in versions} == {run.info.run_id}

    mlflow.set_tracking_uri(where["uri"])  # where runs:/ is looked up, as a user sets it
    try:
        model = mlflow.pyfunc.load_model(where["model_uri"])
    finally:
        mlflow.set_tracking_uri(None)
    served = model.predict(TEXTS)  # [Prediction(label, probability)], the model's type hints
    cli = subprocess.run([sys.executable, "-m", "pgkd.cli", "predict", report["best_student"]["path"], *TEXTS],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    expected = [json.loads(line) for line in cli.stdout.splitlines()]
    assert [p.label for p in served] == [row["label"] for row in expected]
    assert [round(p.probability, 4) for p in served] == [row["probability"] for row in expected]

    port = free_port()
    env = os.environ | {"MLFLOW_TRACKING_URI": where["uri"],
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", where["model_uri"],
                               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        answer = post_when_up(port, {"inputs": TEXTS[:1]}, server)
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
    assert answer == {"predictions": [{"label": expected[0]["label"], "probability": pytest.approx(
        expected[0]["probability"], abs=1e-4)}]}


def post_when_up(port: int, body: dict, server: subprocess.Popen, timeout_s: float = 90) -> dict:
    import httpx

    deadline = time.time() + timeout_s
    while True:
        assert server.poll() is None, "mlflow models serve exited"
        try:
            reply = httpx.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=10)
            reply.raise_for_status()
            return reply.json()
        except httpx.TransportError:
            assert time.time() < deadline, "mlflow models serve never answered"
            time.sleep(0.5)


@pytest.mark.integration
def test_a_tracking_server_that_refuses_connections_costs_one_warning_line_and_the_run_finishes(tmp_path):
    port = free_port()  # nothing listens there
    lines: list[str] = []
    report = pgkd.run(REPO / "ray_configs" / "demo.yaml", run_id="untracked", progress=lines.append,
                      overrides=overrides(tmp_path / "runs", **{"tracking.uri": f"http://127.0.0.1:{port}",
                                                               "tracking.retry_wait_s": 0.2}))
    assert report["best_student"] and report["stopped_by"]["reason"] == "teacher_done"
    warnings = [line for line in lines if line.startswith("tracking:")]
    assert len(warnings) == 1 and "given up" in warnings[0] and "Connection refused" in warnings[0]
    assert report["tracking"]["state"] == "lost" and report["tracking"]["run_id"] is None
    saved = json.loads((tmp_path / "runs" / "untracked" / "report.json").read_text())
    assert saved["tracking"]["state"] == "lost"
    assert "Tracking was lost" in (tmp_path / "runs" / "untracked" / "report.md").read_text()
