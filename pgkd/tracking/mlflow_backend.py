"""MLflow as the tracking backend, through MlflowClient (explicit run ids: nothing global of the user's changes
but for the one log_model call, which MLflow only offers through its fluent API and which is put back after)."""
from __future__ import annotations

import os
from pathlib import Path

from pgkd.basics.redact import redact
from pgkd.tracking.base import Point, Tracker
from pgkd.tracking.config import TrackingConfig

RUN_TAG = "pgkd.run_id"
MODEL_NAME = "student"
MODEL_CODE = Path(__file__).with_name("student_model.py")
BATCH = 100  # MLflow takes at most 100 params and 1000 metrics per log_batch


class MLflowTracker(Tracker):
    def __init__(self, config: TrackingConfig, runs_dir: Path):
        # MLflow's own HTTP retries last minutes by default; the outbox retries instead, so a dead server is
        # given up in seconds. A user's own settings win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow.tracking import MlflowClient

        local = config.uri is None
        self.uri = f"sqlite:///{(Path(runs_dir) / 'mlflow.db').resolve()}" if local else config.uri
        self.artifact_root = (Path(runs_dir) / "mlartifacts").resolve().as_uri() if local else None
        if local:
            Path(runs_dir).mkdir(parents=True, exist_ok=True)
        self.config = config
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.params: dict[str, str] = {}
        self.model_uri: str | None = None

    def open(self, pgkd_run_id: str, tags: dict[str, str]) -> None:
        experiment = self.client.get_experiment_by_name(self.config.experiment)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            self.config.experiment, artifact_location=self.artifact_root)
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{pgkd_run_id}'",
                                        max_results=1)
        if found:  # a resumed run, or a retry after a create whose answer was lost
            run = found[0]
            self.client.update_run(run.info.run_id, status="RUNNING")
        else:
            run = self.client.create_run(experiment_id, run_name=pgkd_run_id, tags=tags | {RUN_TAG: pgkd_run_id})
        self.run_id, self.started_ms, self.params = run.info.run_id, run.info.start_time, dict(run.data.params)

    def log_params(self, params: dict[str, str]) -> list[str]:
        from mlflow.entities import Param

        new = [Param(key, value) for key, value in params.items() if key not in self.params]
        for start in range(0, len(new), BATCH):
            self.client.log_batch(self.run_id, params=new[start:start + BATCH])
        changed = sorted(key for key, value in params.items() if key in self.params and self.params[key] != value)
        if changed:  # MLflow params cannot change: a resume with --set says which did
            self.client.set_tag(self.run_id, "pgkd.params_changed_on_resume", ", ".join(changed)[:5000])
        self.params |= {param.key: param.value for param in new}
        return changed

    def log_points(self, points: list[Point]) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(p.key, p.value, p.timestamp_ms, p.step) for p in points]
        for start in range(0, len(metrics), 10 * BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 10 * BATCH])

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, key, value)

    def log_files(self, paths: list[Path], folder: str | None = None) -> None:
        for path in paths:
            if Path(path).is_file():
                self.client.log_artifact(self.run_id, str(path), folder)

    def log_json(self, value: dict, name: str) -> None:
        self.client.log_dict(self.run_id, value, name)

    def log_student(self, folder: Path, example: list[str], register_as: str | None) -> str:
        import mlflow

        from importlib.metadata import version

        before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        try:
            with mlflow.start_run(run_id=self.run_id):
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME, python_model=str(MODEL_CODE), artifacts={"student": str(folder)},
                    input_example=example, registered_model_name=register_as,
                    pip_requirements=[f"pgkd=={version('pgkd')}"])  # pgkd brings the student's own needs
        finally:
            mlflow.set_tracking_uri(before[0])
            mlflow.set_registry_uri(before[1])
        self.model_uri = f"runs:/{self.run_id}/{MODEL_NAME}"
        return info.model_uri

    def close(self, ok: bool) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if ok else "FAILED")

    def where(self) -> dict:
        return {"backend": "mlflow", "uri": redact(self.uri), "experiment": self.config.experiment,
                "run_id": self.run_id, "model_uri": self.model_uri}
