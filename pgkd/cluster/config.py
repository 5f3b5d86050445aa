"""The ray block of a run: which cluster, its dashboard, restarts, and the custom resources each pool asks for."""
from __future__ import annotations

from pydantic import Field, field_validator

from pgkd.basics.settings import Settings


class RayConfig(Settings):
    address: str | None = None  # None: start a local cluster
    dashboard: bool = True
    dashboard_host: str = Field("127.0.0.1", description="where a local cluster's dashboard listens; 0.0.0.0 "
                                "exposes it (and Ray's job API) to the network")
    num_cpus: int | None = Field(None, ge=1, description="logical CPUs of the local cluster")
    namespace: str = "pgkd"
    # Custom Ray resources each teacher / student actor also asks for, e.g. {"pgkd_teacher_gpu": 1}: nodes that
    # advertise them (ray_configs/cluster-aws.yaml, kuberay-rayjob.yaml) form pools that never take each other's GPUs.
    teacher_resources: dict[str, float] = Field(default_factory=dict, description="custom resources per teacher")
    max_restarts: int = Field(3, ge=0, description="times Ray restarts a failed teacher or student actor")
    student_resources: dict[str, float] = Field(default_factory=dict, description="custom resources per student")
    evaluator_resources: dict[str, float] = Field(default_factory=dict, description="custom resources of the "
                                                  "evaluator and the pool scorer (e.g. a CPU node's), so they never "
                                                  "take a slot of the GPU pools")

    @field_validator("teacher_resources", "student_resources", "evaluator_resources")
    @classmethod
    def _custom_only(cls, value: dict[str, float]) -> dict[str, float]:
        builtin = sorted(set(value) & {"CPU", "GPU", "memory", "object_store_memory"})
        if builtin:  # Ray refuses these in `resources`; threads and gpus set them
            raise ValueError(f"{builtin} are not custom resources; use threads / gpus_per_replica / gpus")
        if any(amount < 0 for amount in value.values()):
            raise ValueError("resource amounts must be >= 0")
        return value
