"""The driver of one run: validate inputs, start the bus and Ray, launch actors, watch, then report.

Everything that can be checked is checked before anything starts (config, dataset, the teacher endpoint); what
the run then starts is owned by a RunSession (pgkd/session.py), which stops it on every way out.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from pgkd.basics.settings import check_safe_name

from pgkd.bus.config import redis_url_from_env

from pgkd.config import RunConfig, dump_config

from pgkd.teacher.config import teacher_kind
from pgkd.basics.dataset import dedupe_texts, load_dataset, overlap, rows_not_taken, sample_per_class, split_per_class
from pgkd.basics.errors import BusUnavailable, InputError
from pgkd.basics.pool_files import plan_shards, pool_files, text_id
from pgkd.bus.archive import StreamArchive
from pgkd.basics.atomic_files import write_atomic
from pgkd.basics.redact import redact, redact_urls
from pgkd.bus.client import EXAMPLES, Bus
from pgkd.bus.control import request_stop
from pgkd.bus.lease import DriverLease, LeaseHeld
from pgkd.bus.messages import SEEDS_PRODUCER, Example, ExampleBatch, Stop
from pgkd.bus.roster import student_names
from pgkd.bus.server import EmbeddedRedis
from pgkd.cluster.cpu import cpu_info, dtype_refusal
from pgkd.cluster.ray_auth import guard_token
from pgkd.cluster.placement import local_cluster_cpus
from pgkd.console import quiet_terminal
from pgkd.finish import finish_run, write_report
from pgkd.runs import new_run_id, write_run_file
from pgkd.session import RunSession
from pgkd.teacher.audit import audit_sample
from pgkd.track import RunTracking

log = logging.getLogger("pgkd.driver")
DEFAULT_AUDIT_PER_CLASS = 5
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # keeps every Ray listener on loopback (measured)


def prepare_inputs(config: RunConfig):
    """Load and check the dataset; choose the seeds. Raises InputError naming file, line and field."""
    from pgkd.launch import RunInputs

    check_engine_dtype(config)
    data = load_dataset(config.dataset.path)
    seeds = dedupe_texts(sample_per_class(data.train, config.dataset.seeds_per_class, config.dataset.sample_seed))
    missing = sorted(set(data.label_names) - {row["label"] for row in seeds})
    if missing:
        raise InputError(f"labels with no train example to seed from: {missing[:10]}",
                         file=str(Path(config.dataset.path) / "train.jsonl"))
    shared = overlap(seeds, data.validation + data.test)
    if shared:
        log.warning("%d of %d seed texts are also validation or test texts (%s): scores will read high",
                    shared, len(seeds), Path(config.dataset.path) / "train.jsonl")
    validation = sample_per_class(data.validation, _per_class_cap(config, data), config.dataset.sample_seed)
    steering, selection = split_per_class(validation, config.dataset.selection_share, config.dataset.sample_seed)
    protected = [row["text"] for row in data.validation + data.test]
    pool = choose_pool(config, data, seeds, protected) if in_memory_pool(config) else []
    reservoir = choose_reservoir(config, data, seeds, protected) if teacher_kind(config.teacher).needs_reservoir else []
    inputs = RunInputs(labels=[{"name": l.name, "description": l.description} for l in data.labels], seeds=seeds,
                       validation=steering, selection=selection, protected_texts=protected,
                       task=config.dataset.task, pool=[row["text"] for row in pool],
                       pool_gold=[row.get("label") for row in pool], reservoir=reservoir,
                       audit=choose_audit(config, steering, data),
                       protected_ids=sorted({text_id(t) for t in protected + [row["text"] for row in seeds]}))
    if config.teacher.pool_labelling and config.dataset.pool:
        files = pool_files(config.dataset.pool)  # missing, unknown or empty files are refused here
        inputs.pool_files = [str(f) for f in files]
        inputs.pool_shards = [s.as_dict() for s in plan_shards(files, config.dataset.pool_shard_rows)]
    return data, inputs


def in_memory_pool(config: RunConfig) -> bool:
    """unlabeled.jsonl or pool_from_train: read whole, capped at max_pool, written to the run folder (prepare_pool)."""
    return config.teacher.pool_labelling and not config.dataset.pool


def prepare_pool(config: RunConfig, inputs, run_dir: Path) -> None:
    """An in-memory pool becomes the run folder's pool.jsonl, scored like any pool file."""
    if not inputs.pool:
        return
    path = run_dir / "pool.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in inputs.pool))
    inputs.pool_files = [str(path.resolve())]
    inputs.pool_shards = [s.as_dict() for s in plan_shards([path.resolve()], config.dataset.pool_shard_rows)]


def check_engine_dtype(config: RunConfig) -> None:
    """A CPU teacher engine on this machine (a local cluster) in a dtype its CPU cannot run is refused now, not
    minutes later inside the engine. On a joined cluster each teacher checks its own node when it starts."""
    t = config.teacher
    dtype = t.in_process_dtype()
    if dtype is None or not t.replicas or t.gpus_per_replica or ray_address(config) != "local":
        return
    refusal = dtype_refusal(dtype, cpu_info())
    if refusal:
        raise InputError(refusal, field="teacher.dtype")


def choose_audit(config: RunConfig, steering: list[dict], data) -> list[dict]:
    """The teacher audit's texts: audit_per_class steering texts of each class (never a selection text). A
    steering part too small for it is refused now, with the numbers."""
    t = config.teacher
    if not t.audited or not t.replicas:
        return []
    counts = {label.name: 0 for label in data.labels}
    for row in steering:
        counts[row["label"]] += 1
    per_class = t.audit_per_class or max(1, min(DEFAULT_AUDIT_PER_CLASS, *counts.values()))
    short = {label: n for label, n in counts.items() if n < per_class}
    if short:
        shown = ", ".join(f"'{label}' {n}" for label, n in list(short.items())[:5])
        raise InputError(f"the teacher audit needs teacher.audit_per_class={per_class} steering validation "
                         f"texts per class, and {len(short)} of {len(counts)} classes have fewer ({shown}; the "
                         f"steering part is the validation texts kept by dataset.max_validation="
                         f"{config.dataset.max_validation} minus the dataset.selection_share="
                         f"{config.dataset.selection_share:g} held out). Lower teacher.audit_per_class, raise "
                         f"dataset.max_validation, or set teacher.audit: false",
                         file=str(Path(config.dataset.path) / "validation.jsonl"), field="teacher.audit_per_class")
    return audit_sample(steering, per_class, t.audit_max, config.dataset.sample_seed)


def choose_reservoir(config: RunConfig, data, seeds: list[dict], protected: list[str]) -> list[dict]:
    """The hidden texts of a teacher kind that needs_reservoir (the simulated one): the labelled train texts the
    seeds did not take (never a validation or test text). Students see them only through that teacher."""
    rows = rows_not_taken(data.train, [row["text"] for row in seeds] + protected)
    if not rows:
        raise InputError(f"teacher.backend '{config.teacher.backend}' needs labelled train texts left after "
                         f"seeding, and dataset.seeds_per_class={config.dataset.seeds_per_class} took them all",
                         file=str(Path(config.dataset.path) / "train.jsonl"), field="teacher.backend")
    return rows


def choose_pool(config: RunConfig, data, seeds: list[dict], protected: list[str]) -> list[dict]:
    """The unlabelled pool: unlabeled.jsonl, or the train texts left after seeding (labels kept aside only to
    score the teacher's pool labels in the report). Never a seed, validation or test text; capped at random."""
    import random

    rows = rows_not_taken(data.train if config.dataset.pool_from_train else data.unlabeled,
                          [row["text"] for row in seeds] + protected)
    cap = config.dataset.max_pool
    if cap is not None and len(rows) > cap:
        rows = random.Random(config.dataset.sample_seed).sample(rows, cap)
    if not rows:
        source = "train.jsonl" if config.dataset.pool_from_train else "unlabeled.jsonl"
        raise InputError("teacher.pool_labelling is on but the pool is empty", file=str(Path(config.dataset.path) / source))
    return rows


def _per_class_cap(config: RunConfig, data) -> int | None:
    cap = config.dataset.max_validation
    return None if cap is None else max(1, cap // len(data.labels))


def open_bus(session: RunSession, config: RunConfig, run_dir: Path, run_id: str,
             url: str | None) -> tuple[Bus, EmbeddedRedis | None]:
    """The configured Redis, or an embedded redis-server the session stops on the way out."""
    embedded = None
    if url is None:
        embedded = EmbeddedRedis(run_dir / "redis")
        session.own(embedded.stop, urgent=True)  # before start(): a start cut short still stops the process
        url = embedded.start().url
    return checked_bus(url, run_id, config), embedded


def ray_address(config: RunConfig) -> str:
    """Where the driver's ray.init goes: ray.address; else, under `ray job submit`, the job's cluster (its
    supervisor sets RAY_ADDRESS to the GCS address); else "local", a new local cluster, even where a `ray start`
    cluster runs on this machine (a bare ray.init() would join that one). An http:// RAY_ADDRESS is a dashboard
    URL for the jobs CLI, not a cluster to join."""
    if config.ray.address:
        return config.ray.address
    env = os.environ.get("RAY_ADDRESS", "")
    if env and not env.startswith(("http://", "https://")):
        return env
    return "local"


def driver_env_vars() -> dict[str, str]:
    """Env vars every Ray worker of the run gets. Inside a Ray job, only those the job's runtime env does not
    set already: ray.init refuses to merge the same key twice."""
    env = RAY_LOOPBACK_ENV | {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
    taken = (job.get("runtime_env") or {}).get("env_vars") or {}
    return {key: value for key, value in env.items() if key not in taken}


def start_ray(config: RunConfig, verbose: bool = False) -> str | None:
    """Connect to the configured (or the job's) cluster, or start a local one. Returns the dashboard's URL where
    there is one. The actors' lines reach this terminal only with verbose (else they are in runs/<id>/logs/)."""
    import ray

    os.environ.update(RAY_LOOPBACK_ENV)
    if ray.is_initialized():
        return None
    runtime_env = {"env_vars": driver_env_vars()}
    address = ray_address(config)
    if address != "local":
        context = ray.init(address=address, namespace=config.ray.namespace, runtime_env=runtime_env,
                           log_to_driver=verbose)
        return dashboard_url(context)

    cpus = local_cluster_cpus(config.teacher.replicas, config.teacher.threads,
                              sum(s.threads for _, s in student_names(config)), config.evaluator.threads,
                              config.ray.num_cpus, pool_cpus(config))
    context = ray.init(address="local", num_cpus=cpus, namespace=config.ray.namespace,
                       include_dashboard=config.ray.dashboard, dashboard_host=config.ray.dashboard_host,
                       runtime_env=runtime_env, log_to_driver=verbose)
    url = dashboard_url(context)
    return f"{url} ({guard_token()})" if url else None


def pool_cpus(config: RunConfig) -> int:
    """Logical CPUs pool scoring takes: the scorer, and the largest student's scoring actors (one round at a time)."""
    if not config.teacher.pool_labelling:
        return 0
    return 1 + max(s.pool_scorers * s.threads for s in config.students)


def dashboard_url(context) -> str | None:
    url = getattr(context, "dashboard_url", None)
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"


def save_config(config: RunConfig, path: Path) -> None:
    """The resolved config of the run, credentials redacted."""
    import yaml

    write_atomic(path, yaml.safe_dump(redact_urls(dump_config(config)), sort_keys=False))


def probe_teacher(config: RunConfig, progress) -> None:
    """A teacher that can be tried before anything starts (an endpoint) is tried now: unreachable or unauthorised
    fails now."""
    if config.teacher.replicas:
        teacher_kind(config.teacher).probe(config.teacher, progress)


def checked_run_id(run_id: str | None, config: RunConfig) -> str:
    if run_id is None:
        return new_run_id(config.name)
    try:
        return check_safe_name(run_id)
    except ValueError as exc:
        raise InputError(str(exc), field="--run-id") from None


def publish_seeds(bus: Bus, seeds: list[dict]) -> None:
    examples = [Example(text=row["text"], label=row["label"], source="seed") for row in seeds]
    bus.publish(EXAMPLES, ExampleBatch(producer=SEEDS_PRODUCER, batch=0, examples=examples),
                operation=f"examples:{SEEDS_PRODUCER}:0")


def run(config: RunConfig, run_id: str | None = None, progress=print, verbose: bool = False) -> dict:
    """Run one distillation to its end and return the report (also written under runs/<run_id>/)."""
    data, inputs = prepare_inputs(config)
    url = redis_url_from_env(config.redis)
    run_id = checked_run_id(run_id, config)
    probe_teacher(config, progress)
    run_dir = Path(config.runs_dir) / run_id
    with RunSession(run_dir, progress, fresh=True) as session:
        bus, embedded = open_bus(session, config, run_dir, run_id, url)
        hold_run(session, bus, run_id, config)
        write_run_file(run_dir, run_id, bus.url, embedded is not None)
        save_config(config, run_dir / "config.yaml")
        progress(f"run {run_id}: {len(data.labels)} labels, {len(inputs.seeds)} seeds, "
                 f"{len(inputs.validation)} validation texts; bus {redact(bus.url)}; folder {run_dir}")
        publish_seeds(bus, inputs.seeds)
        return drive(session, config, data, inputs, bus, embedded, run_id, run_dir, progress, verbose)


def hold_run(session: RunSession, bus: Bus, run_id: str, config: RunConfig,
             lease: DriverLease | None = None) -> DriverLease:
    """Take the run's lease in Redis (or keep the one taken already), renew it while the session lasts, release
    it on the way out. Another live driver, on any machine, is named and refused."""
    if lease is None:
        lease = DriverLease(bus, config.redis.driver_lease_s)
        try:
            lease.acquire()
        except LeaseHeld as exc:
            raise InputError(f"run '{run_id}' is driven by {exc}; `pgkd stop {run_id}` it, or wait for it",
                             field="run_id") from None
    session.own(lease.release)
    lease.keep(on_lost=lambda: session.progress("this driver's lease on the run was taken by another driver "
                                                "(it could not reach Redis for longer than redis.driver_lease_s): "
                                                "stopping without touching the run"))
    session.lease = lease
    return lease


def checked_bus(url: str, run_id: str, config: RunConfig) -> Bus:
    """A Bus that answered a ping within redis.startup_timeout_s; then it rides out outages (retry_seconds)."""
    bus = Bus(url, run_id, retry_seconds=config.redis.startup_timeout_s)
    try:
        bus.ping()
    except BusUnavailable as exc:
        raise BusUnavailable(f"cannot reach Redis at {redact(url)} within {config.redis.startup_timeout_s:g}s "
                             f"(redis.startup_timeout_s): {exc.__cause__}") from exc
    bus.retry_seconds = config.redis.retry_seconds
    return bus


def drive(session: RunSession, config: RunConfig, data, inputs, bus: Bus, embedded: EmbeddedRedis | None,
          run_id: str, run_dir: Path, progress, verbose: bool = False) -> dict:
    """Start Ray, launch the actors, watch them until the run stops, write the report. The session stops
    whatever was started, whichever way this ends. Without verbose the terminal gets pgkd's lines only."""
    if embedded:
        embedded.keep_alive()
    session.stack.enter_context(quiet_terminal(run_dir / "logs" / "driver.log", verbose))
    url = session.start_ray(lambda: start_ray(config, verbose))
    progress(f"dashboard: {url or 'none (ray.dashboard is off, or this Ray has none)'} · "
             f"live status: pgkd status {run_id}" + ("" if config.runs_dir == Path("runs") else
                                                      f" --runs-dir {config.runs_dir}")
             + ("" if verbose else f" · logs: {run_dir / 'logs'}/"))
    prepare_pool(config, inputs, run_dir)
    tracking = RunTracking(config, run_id, progress)
    started = time.time()
    stop = supervise(session, config, inputs, bus, run_id, run_dir, progress, verbose, tracking)
    if session.lease is not None and session.lease.lost.is_set():  # the run is another driver's now: hands off
        raise BusUnavailable(f"another driver took run '{run_id}' over; this one stopped its own actors and wrote "
                             f"nothing (see `pgkd status {run_id}`)")
    report = finish_run(config, data, inputs, bus, run_id, run_dir, stop, time.time() - started, progress)
    example = [row["text"] for row in (inputs.validation or inputs.seeds)[:1]]
    tracking.finish(bus, report, run_dir, example, lambda changed: write_report(changed, run_dir))
    return report


def supervise(session: RunSession, config: RunConfig, inputs, bus: Bus, run_id: str, run_dir: Path,
              progress, verbose: bool = False, tracking: RunTracking | None = None) -> Stop:
    from pgkd.launch import RunContext, kill_all, launch_all
    from pgkd.watch import Watcher

    archive_dir = str((run_dir / "data").resolve())
    launched = launch_all(RunContext(config, inputs, bus.url, run_id, str((run_dir / "checkpoints").resolve()),
                                     str((run_dir / "logs").resolve()), archive_dir,
                                     actor_output="terminal" if verbose else "file"))
    session.running(lambda signum: request_stop(bus, "user", f"signal {signum}"))
    watcher = Watcher(config, bus, launched, progress, StreamArchive(archive_dir), tracking, session.lease)
    try:
        stop = watcher.until_stopped()
        if session.lease is None or not session.lease.lost.is_set():
            watcher.drain()
    finally:
        kill_all(launched)
    return stop
