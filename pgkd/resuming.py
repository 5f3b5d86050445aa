"""`pgkd resume`: continue a stopped or crashed run from its bus, checkpoints and saved config."""
from __future__ import annotations

from pathlib import Path

from pgkd.basics.errors import BusUnavailable, InputError
from pgkd.basics.redact import HIDDEN, redact
from pgkd.config import RunConfig, dump_config, load_config
from pgkd.basics import storage
from pgkd.bus.archive import open_archive
from pgkd.place import RunPlace
from pgkd.bus.client import CHECKPOINTS, EXAMPLES, Bus
from pgkd.bus.control import clear_stop
from pgkd.bus.roster import restart_roster, student_names, teacher_names
from pgkd.bus.server import EmbeddedRedis
from pgkd.bus.lease import DriverLease, LeaseHeld
from pgkd.driver import checked_bus, drive, hold_run, prepare_inputs, probe_teacher, publish_seeds, save_config
from pgkd.runs import find_run, refuse_if_live, write_run_file
from pgkd.session import RunSession


def resume(run_id: str, runs_dir: str | Path, overrides: list[str] | dict | None = (), progress=print,
           verbose: bool = False) -> dict:
    """Continue a run that was stopped or crashed: its bus (restarted from its append-only file when it was the
    embedded one), its checkpoints on disk and its saved config, plus any --set overrides (e.g. a larger
    teacher.max_batches). Actors come back under the same names and resume their own state from Redis."""
    run_dir, info = find_run(run_id, runs_dir)
    place = RunPlace.of(runs_dir, run_id)
    refuse_if_live(run_id, info)
    config = load_config(run_dir / "config.yaml", overrides)
    refuse_redacted(config, run_dir / "config.yaml")
    config.runs_dir = runs_dir if storage.is_uri(str(runs_dir)) else Path(runs_dir)
    data, inputs = prepare_inputs(config)
    probe_teacher(config, progress)
    run_dir.mkdir(parents=True, exist_ok=True)  # a run in storage by URI resumed on another machine
    with RunSession(run_dir, progress, fresh=False) as session:  # the folder is the run's: never removed
        session.place = place
        lease = claim_live_bus(info["bus_url"], run_id, config)  # before adopting a server another driver owns
        if lease is not None:
            session.own(lease.release)  # whatever fails from here, the run is not left held
        bus, embedded = reopen_bus(config, run_dir, run_id, info, own=session.own)
        hold_run(session, bus, run_id, config, lease)
        write_run_file(run_dir, run_id, bus.url, info.get("embedded_redis", False), place, config.redis.password_env)
        save_config(config, run_dir / "config.yaml", place)
        previous = clear_stop(bus)
        restart_roster(bus, launched_names(config))
        progress(f"resuming run {run_id} (last stopped by {previous.reason if previous else 'a crash'}): "
                 f"{bus.stream_length(EXAMPLES)} example batches and {bus.stream_length(CHECKPOINTS)} checkpoints "
                 f"on the bus {redact(bus.url)}")
        if bus.stream_length(EXAMPLES) == 0 and open_archive(place.shared("data")).last_id() is None:  # no seeds out
            publish_seeds(bus, inputs.seeds)
        return drive(session, config, data, inputs, bus, embedded, run_id, run_dir, progress, verbose)


def claim_live_bus(url: str, run_id: str, config: RunConfig) -> DriverLease | None:
    """The run's lease, taken on its bus if that answers now (another driver, on any machine, is refused here,
    before anything of the run is touched); None where the bus is down (a stopped embedded server: the lease is
    taken once it is restarted, and nobody can hold it meanwhile)."""
    bus = Bus(url, run_id, retry_seconds=1)
    try:
        bus.ping()
    except BusUnavailable:
        return None
    lease = DriverLease(bus, config.redis.driver_lease_s)
    try:
        lease.acquire()
    except LeaseHeld as exc:
        raise InputError(f"run '{run_id}' is driven by {exc}; `pgkd stop {run_id}` it (or wait for it) before "
                         f"resuming", field="run_id") from None
    lease.bus = checked_bus(url, run_id, config)  # renewals ride out outages like every other call
    return lease


def refuse_redacted(config: RunConfig, path: Path) -> None:
    """A credential in a URL was saved as *** (never in a file): the user gives it again with --set, or better
    moves it out of the URL (an endpoint's key belongs in teacher.api_key_env). The bus URL comes from run.json."""
    def walk(value, where: str):
        if isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, f"{where}.{key}" if where else key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, f"{where}.{index}")
        elif isinstance(value, str) and "://" in value and HIDDEN in value:
            yield where

    for field in walk(dump_config(config), ""):
        if field != "redis.url":
            raise InputError(f"its credentials were redacted when the run was saved: give it again with "
                             f"--set {field}=...", file=str(path), field=field)


def launched_names(config: RunConfig) -> set[str]:
    return set(teacher_names(config)) | {name for name, _ in student_names(config)}


def reopen_bus(config: RunConfig, run_dir: Path, run_id: str, info: dict,
               own=lambda stop, urgent=False: None) -> tuple[Bus, EmbeddedRedis | None]:
    """The run's bus again. An embedded server still up (it outlives a killed driver) is adopted; a stopped one
    is started on a free port from its data folder, with its password. own(server.stop) is called before the
    server is adopted or started, so the caller stops it on every way out."""
    from urllib.parse import urlsplit

    url = info["bus_url"]
    if not info.get("embedded_redis"):
        return checked_bus(url, run_id, config), None
    parts = urlsplit(url)
    try:
        Bus(url, run_id, retry_seconds=1).ping()
        embedded = EmbeddedRedis.attach(run_dir / "redis", parts.hostname, parts.port, parts.password)
        own(embedded.stop, urgent=True)
    except BusUnavailable:
        embedded = EmbeddedRedis(run_dir / "redis", password=parts.password, host=parts.hostname)
        own(embedded.stop, urgent=True)
        embedded.start()
    return checked_bus(embedded.url, run_id, config), embedded
