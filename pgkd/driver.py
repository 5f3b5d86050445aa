"""The driver of one run: validate inputs, start the bus and Ray, launch actors, watch, then report.

Everything that can be checked is checked before anything starts (config, dataset, the teacher endpoint); what
the run then starts is owned by a RunSession (pgkd/session.py), which stops it on every way out.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import time
from pathlib import Path

from pgkd.basics import storage
from pgkd.basics.atomic_files import write_atomic
from pgkd.basics.errors import BusUnavailable, InputError
from pgkd.basics.redact import redact, redact_urls
from pgkd.basics.settings import check_safe_name
from pgkd.basics.storage import StorageError
from pgkd.bus.archive import open_archive
from pgkd.bus.client import EXAMPLES, Bus
from pgkd.bus.config import redis_url_from_env
from pgkd.bus.control import request_stop, set_loop_mode
from pgkd.bus.lease import DriverLease, LeaseHeld
from pgkd.bus.messages import SEEDS_PRODUCER, Example, ExampleBatch, Stop
from pgkd.bus.roster import student_names
from pgkd.bus.server import EmbeddedRedis
from pgkd.cluster.placement import local_cluster_cpus
from pgkd.cluster.ray_auth import guard_token
from pgkd.config import RunConfig, dump_config
from pgkd.console import quiet_terminal
from pgkd.finish import finish_run, write_report
from pgkd.place import RunPlace
from pgkd.prepare import prepare_inputs, prepare_pool, ray_address  # noqa: F401 (also this module's API)
from pgkd.runs import RUN_FILE, new_run_id, write_run_file
from pgkd.session import RunSession
from pgkd.teacher.config import teacher_kind
from pgkd.track import RunTracking

log = logging.getLogger("pgkd.driver")
RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # keeps every Ray listener on loopback (measured)


def open_bus(session: RunSession, config: RunConfig, run_dir: Path, run_id: str,
             url: str | None) -> tuple[Bus, EmbeddedRedis | None]:
    """The configured Redis, or an embedded redis-server the session stops on the way out."""
    embedded = None
    if url is None:
        embedded = EmbeddedRedis(run_dir / "redis")
        session.own(embedded.stop, urgent=True)  # before start(): a start cut short still stops the process
        url = embedded.start().url
    return checked_bus(url, run_id, config), embedded


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


def save_config(config: RunConfig, path: Path, place: RunPlace | None = None) -> None:
    """The resolved config of the run, credentials redacted; also in run storage for a remote run."""
    import yaml

    write_atomic(path, yaml.safe_dump(redact_urls(dump_config(config)), sort_keys=False))
    if place is not None:
        place.publish(path.name)


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
    place = RunPlace.of(config.runs_dir, run_id)
    if place.remote:
        check_run_storage(place, url)
    run_dir = place.local
    with RunSession(run_dir, progress, fresh=True) as session:
        session.place = place
        session.stack.callback(lambda: session.launched or forget_stored_start(place))
        bus, embedded = open_bus(session, config, run_dir, run_id, url)
        hold_run(session, bus, run_id, config)
        write_run_file(run_dir, run_id, bus.url, embedded is not None, place, config.redis.password_env)
        save_config(config, run_dir / "config.yaml", place)
        progress(f"run {run_id}: {len(data.labels)} labels, {len(inputs.seeds)} seeds, "
                 f"{len(inputs.validation)} validation texts; bus {redact(bus.url)}; folder {place.store}"
                 + (f" (this machine's part: {run_dir})" if place.remote else ""))
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
        session.own(lease.release)  # a lease taken earlier (resume) was given to the session when taken
    lease.keep(on_lost=lambda: session.progress("this driver's lease on the run was taken by another driver "
                                                "(it could not reach Redis for longer than redis.driver_lease_s): "
                                                "stopping without touching the run"))
    session.lease = lease
    return lease


def forget_stored_start(place: RunPlace) -> None:
    """A start that failed before any actor ran leaves nothing in run storage, so the same run id may be tried
    again (the local folder goes the same way, RunSession)."""
    try:
        place.remove_stored(RUN_FILE, "config.yaml")
    except (OSError, StorageError) as exc:
        log.warning("could not take the failed start's files out of %s: %s", place.store, exc)


def check_run_storage(place: RunPlace, url: str | None) -> None:
    """Run storage by URI is for a cluster: refused now, naming runs_dir, when its bus is this machine's own, its
    bucket is missing or not writable, or the run exists there already."""
    if url is None:
        raise InputError("is object storage, for a cluster, and the embedded Redis is reachable from this machine "
                         "only: set redis.url (or PGKD_REDIS_URL) to a Redis every node reaches", field="runs_dir")
    try:
        storage.check_writable(storage.parent(place.store))
        taken = storage.exists(place.stored(RUN_FILE))
    except StorageError as exc:
        raise InputError(str(exc), field="runs_dir") from None
    if taken:
        raise InputError(f"run '{place.run_id}' exists already in {storage.parent(place.store)} (`pgkd resume` "
                         f"continues a run)", field="run_id")


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
                                                      f" --runs-dir {shlex.quote(str(config.runs_dir))}")
             + ("" if verbose else f" · logs: {run_dir / 'logs'}/"))
    prepare_pool(config, inputs, run_dir, session.place)
    tracking = RunTracking(config, run_id, progress)
    started = time.time()
    stop = supervise(session, config, inputs, bus, run_id, run_dir, progress, verbose, tracking)
    if session.lease is not None and session.lease.lost.is_set():  # the run is another driver's now: hands off
        raise BusUnavailable(f"another driver took run '{run_id}' over; this one stopped its own actors and wrote "
                             f"nothing (see `pgkd status {run_id}`)")
    report = finish_run(config, data, inputs, bus, run_id, run_dir, stop, time.time() - started, progress,
                        session.place)
    example = [row["text"] for row in (inputs.validation or inputs.seeds)[:1]]
    tracking.finish(bus, report, run_dir, example, lambda changed: write_report(changed, run_dir, session.place))
    return report


def supervise(session: RunSession, config: RunConfig, inputs, bus: Bus, run_id: str, run_dir: Path,
              progress, verbose: bool = False, tracking: RunTracking | None = None) -> Stop:
    from pgkd.launch import RunContext, kill_all, launch_all
    from pgkd.watch import Watcher

    place = session.place or RunPlace.of(config.runs_dir, run_id)
    archive_dir = place.shared("data")
    set_loop_mode(bus, config.loop.mode)  # before any actor reads it
    launched = launch_all(RunContext(config, inputs, bus.url, run_id, place.shared("checkpoints"),
                                     str((run_dir / "logs").resolve()), archive_dir,
                                     actor_output="terminal" if verbose else "file"))
    session.running(lambda signum: request_stop(bus, "user", f"signal {signum}"))
    watcher = Watcher(config, bus, launched, progress, open_archive(archive_dir), tracking, session.lease)
    try:
        stop = watcher.until_stopped()
        if session.lease is None or not session.lease.lost.is_set():
            watcher.drain()
    finally:
        kill_all(launched)
    return stop
