"""Creates (and removes) the named actors of a run from its config, with the options pgkd.cluster.placement decides
(the top: it reads the whole run config, which no actor sees; each actor gets its own block as JSON)."""
from __future__ import annotations

from dataclasses import dataclass, field

import ray

from pgkd.actors.evaluator_actor import EvaluatorActor
from pgkd.actors.pool_scorer_actor import NAME as POOL_SCORER
from pgkd.actors.pool_scorer_actor import PoolScorerActor
from pgkd.actors.student_actor import StudentActor
from pgkd.actors.teacher_actor import TeacherActor
from pgkd.teacher.audit import audit_budget
from pgkd.config import RunConfig
from pgkd.student.base import StudentSettings
from pgkd.bus.roster import student_name, student_names, teacher_name
from pgkd.cluster.placement import actor_options, teacher_env


@dataclass
class RunInputs:
    """What the driver prepared from the dataset, handed to the actors as plain data."""

    labels: list[dict]
    seeds: list[dict]
    validation: list[dict]
    protected_texts: list[str]
    task: str
    pool: list[str] = field(default_factory=list)  # an in-memory pool (unlabeled.jsonl, pool_from_train)
    pool_gold: list[str | None] = field(default_factory=list)  # its hidden labels, kept by the driver for the report
    pool_files: list[str] = field(default_factory=list)  # the pool the scorer reads (empty: no active learning)
    pool_shards: list[dict] = field(default_factory=list)  # basics.pool_files.PoolShard of those files
    protected_ids: list[str] = field(default_factory=list)  # ids of seed, validation and test texts: never pool
    selection: list[dict] = field(default_factory=list)  # validation texts that choose the best; never steer
    reservoir: list[dict] = field(default_factory=list)  # the simulated teacher's hidden labelled texts
    audit: list[dict] = field(default_factory=list)  # steering validation texts the teacher audit labels


@dataclass
class RunContext:
    """Everything needed to start one more actor of a live run (scaling, restarts by the driver)."""

    config: RunConfig
    inputs: RunInputs
    bus_url: str
    run_id: str
    checkpoint_dir: str
    log_dir: str | None = None  # per-actor JSON-lines logs; None: stdout only
    archive_dir: str | None = None  # where acked example batches go before Redis trims them; None: never trimmed
    actor_output: str = "file"  # "file": each actor's stdout/stderr (vLLM's too) into <log_dir>/<name>.log;
    # "terminal": left to Ray, which streams it to the driver (pgkd --verbose)

    @property
    def label_names(self) -> list[str]:
        return [label["name"] for label in self.inputs.labels]

    def env(self) -> dict[str, str]:
        env = {"PGKD_BUS_RETRY_S": str(self.config.redis.retry_seconds)}
        if self.log_dir:
            env |= {"PGKD_LOG_DIR": self.log_dir, "PGKD_ACTOR_OUTPUT": self.actor_output}
        return env


@dataclass
class Launched:
    context: RunContext
    handles: dict[str, object] = field(default_factory=dict)
    runs: dict[str, object] = field(default_factory=dict)  # actor name -> ObjectRef of its run()

    def start(self, name: str, handle) -> None:
        self.handles[name], self.runs[name] = handle, handle.run.remote()


def audit_budget_of(config) -> dict:
    """The audit's budget in seconds, resolved against the run's time budget (teacher/audit.py audit_budget)."""
    if not hasattr(config.teacher, "audit_budget_s"):
        return {}
    return {"audit_budget_s": audit_budget(config.teacher.audit_budget_s, config.loop.time_budget_s)}


def launch_teacher(launched: Launched, replica: int) -> str:
    c, name = launched.context, teacher_name(replica)
    t = c.config.teacher
    options = actor_options(name, c.config.ray.namespace, t.threads, t.gpus_per_replica,
                            teacher_env(t.preloads_libraries(), t.threads) | c.env(),
                            resources=c.config.ray.teacher_resources, max_restarts=c.config.ray.max_restarts)
    launched.start(name, TeacherActor.options(**options).remote(
        name, c.bus_url, c.run_id, t.model_dump(mode="json") | audit_budget_of(c.config), c.inputs.labels, c.inputs.seeds,
        c.inputs.protected_texts, c.inputs.task, replica, c.inputs.reservoir, c.inputs.audit))
    return name


def launch_student(launched: Launched, student: StudentSettings, replica: int) -> str:
    c, name = launched.context, student_name(student, replica)
    options = actor_options(name, c.config.ray.namespace, student.threads, student.gpus, c.env(),
                            resources=c.config.ray.student_resources, max_restarts=c.config.ray.max_restarts)
    launched.start(name, StudentActor.options(**options).remote(
        name, c.bus_url, c.run_id, student.model_dump(mode="json"), c.label_names, c.checkpoint_dir,
        c.config.loop.poll_interval_s, c.inputs.validation, c.archive_dir))
    return name


def launch_evaluator(launched: Launched) -> str:
    c = launched.context
    options = actor_options("evaluator", c.config.ray.namespace, c.config.evaluator.threads, extra_env=c.env(),
                            resources=c.config.ray.evaluator_resources,
                            max_restarts=c.config.ray.max_restarts)  # it rebuilds its state from the reports
    launched.start("evaluator", EvaluatorActor.options(**options).remote(
        c.bus_url, c.run_id, c.config.evaluator.model_dump(mode="json"), c.config.loop.model_dump(mode="json"),
        c.label_names, c.inputs.validation, [name for name, _ in student_names(c.config)],
        selection=c.inputs.selection))
    return "evaluator"


def launch_pool_scorer(launched: Launched) -> str:
    c = launched.context
    options = actor_options(POOL_SCORER, c.config.ray.namespace, 1, extra_env=c.env(),
                            resources=c.config.ray.evaluator_resources,
                            max_restarts=c.config.ray.max_restarts)  # it goes on from its state on the bus
    launched.start(POOL_SCORER, PoolScorerActor.options(**options).remote(
        c.bus_url, c.run_id, [s.model_dump(mode="json") for s in c.config.students], c.inputs.pool_shards,
        c.inputs.protected_ids, c.config.loop.poll_interval_s,
        c.config.dataset.pool_shards_per_round))
    return POOL_SCORER


def launch_all(context: RunContext) -> Launched:
    launched = Launched(context)
    for replica in range(context.config.teacher.replicas):
        launch_teacher(launched, replica)
    for student in context.config.students:
        for replica in range(student.replicas):
            launch_student(launched, student, replica)
    launch_evaluator(launched)
    if context.inputs.pool_shards:
        launch_pool_scorer(launched)
    return launched


def forget(launched: Launched, name: str) -> None:
    """Kill one actor (if still there) and drop it, so its name can be launched again."""
    handle = launched.handles.pop(name, None)
    launched.runs.pop(name, None)
    if handle is not None:
        try:
            ray.kill(handle)
        except Exception:  # already gone
            pass


def kill_all(launched: Launched) -> None:
    for name in list(launched.handles):
        forget(launched, name)


def launch_in_pool(launched: Launched, pool: str, replica: int) -> str:
    if pool == "teacher":
        return launch_teacher(launched, replica)
    student = next(s for s in launched.context.config.students if s.name == pool)
    return launch_student(launched, student, replica)


