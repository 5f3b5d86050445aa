"""Creates the named actors of a run with the options cluster.placement decides."""
from __future__ import annotations

from dataclasses import dataclass, field

import ray

from actors.evaluator_actor import EvaluatorActor
from actors.student_actor import StudentActor
from actors.teacher_actor import TeacherActor
from cluster.placement import actor_options, teacher_env
from pgkd.config import RunConfig


@dataclass
class RunInputs:
    """What the driver prepared from the dataset, handed to the actors as plain data."""

    labels: list[dict]
    seeds: list[dict]
    validation: list[dict]
    protected_texts: list[str]
    task: str
    pool: list[str] = field(default_factory=list)  # unlabelled texts for active learning (empty: off)
    pool_gold: list[str | None] = field(default_factory=list)  # hidden labels, kept by the driver for the report


@dataclass
class Launched:
    handles: dict[str, object] = field(default_factory=dict)
    runs: dict[str, object] = field(default_factory=dict)  # actor name -> ObjectRef of its run()


def teacher_names(config: RunConfig) -> list[str]:
    return [f"teacher-{i}" for i in range(config.teacher.replicas)]


def student_names(config: RunConfig) -> list[tuple[str, object]]:
    return [(f"student-{s.name}-{i}", s) for s in config.students for i in range(s.replicas)]


def launch_all(config: RunConfig, inputs: RunInputs, bus_url: str, run_id: str, checkpoint_dir: str) -> Launched:
    launched = Launched()
    ns, names = config.ray.namespace, [label["name"] for label in inputs.labels]
    for replica, name in enumerate(teacher_names(config)):
        options = actor_options(name, ns, config.teacher.threads, config.teacher.gpus_per_replica, teacher_env(),
                                resources=config.ray.teacher_resources, max_restarts=config.ray.max_restarts)
        launched.handles[name] = TeacherActor.options(**options).remote(
            name, bus_url, run_id, config.teacher.model_dump(mode="json"), inputs.labels, inputs.seeds,
            inputs.protected_texts, inputs.task, replica, inputs.pool)
    for name, student in student_names(config):
        options = actor_options(name, ns, student.threads, student.gpus, resources=config.ray.student_resources,
                                max_restarts=config.ray.max_restarts)
        launched.handles[name] = StudentActor.options(**options).remote(
            name, bus_url, run_id, student.model_dump(mode="json"), names, checkpoint_dir,
            config.loop.poll_interval_s, inputs.validation, inputs.pool)
    options = actor_options("evaluator", ns, config.evaluator.threads)
    launched.handles["evaluator"] = EvaluatorActor.options(**options).remote(
        bus_url, run_id, config.evaluator.model_dump(mode="json"), config.loop.model_dump(mode="json"), names,
        inputs.validation, teacher_names(config), [name for name, _ in student_names(config)])
    for name, handle in launched.handles.items():
        launched.runs[name] = handle.run.remote()
    return launched


def kill_all(launched: Launched) -> None:
    for handle in launched.handles.values():
        try:
            ray.kill(handle)
        except Exception:  # already gone
            pass
