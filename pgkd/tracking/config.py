"""The tracking block of a run: off by default; `backend: mlflow` sends the run to an MLflow tracking server, or,
with no `uri`, to a SQLite store under runs_dir that `mlflow ui` reads with no server running."""
from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field, field_validator

from pgkd.basics.settings import Settings, check_url

INSTALL_HINT = "pip install 'pgkd[mlflow]' (or: pip install mlflow)"


class TrackingConfig(Settings):
    backend: Literal["none", "mlflow"] = Field("none", description="none: pgkd's own files only")
    uri: str | None = Field(None, description="tracking server (http[s]://host:port, or a sqlite:/// or file: "
                            "store); absent: sqlite:///<runs_dir>/mlflow.db with artifacts in <runs_dir>/mlartifacts")
    experiment: str = Field("pgkd", min_length=1, description="the MLflow experiment; created when missing")
    register_as: str | None = Field(None, min_length=1, description="also register the exported student in the "
                                    "model registry under this name (one new version per finished session)")
    every_s: float = Field(10.0, gt=0, description="how often the driver sends new versions and teacher totals")
    attempts: int = Field(3, ge=1, description="tries per call before tracking is given up for the run")
    retry_wait_s: float = Field(2.0, ge=0, description="wait before the second try; doubled after each")

    @field_validator("uri")
    @classmethod
    def _is_a_store(cls, value: str | None) -> str | None:
        if value is None or value.startswith(("sqlite:///", "file:", "databricks")):
            return value
        return check_url(value, ("http", "https"), "http[s]://host:port, sqlite:///path/mlflow.db or file:///path")

    @field_validator("backend")
    @classmethod
    def _backend_is_installed(cls, value: str) -> str:
        if value == "mlflow" and importlib.util.find_spec("mlflow") is None:
            raise ValueError(f"backend 'mlflow' needs the mlflow package, which is not installed: {INSTALL_HINT}")
        return value

    @property
    def enabled(self) -> bool:
        return self.backend != "none"
