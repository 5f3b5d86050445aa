"""pgkd from Python: the functions the CLI is a thin layer over. A notebook runs a distillation in a cell:

    import pgkd
    report = pgkd.run("ray_configs/demo.yaml", overrides={"loop.time_budget_s": 120})
    print(report["best_student"]["test"]["macro_f1"])
    student = pgkd.load_student(report["best_student"]["path"])
    student.predict(["I lost my card"])          # [(label, probability)]

and watches or stops one from another cell or process with pgkd.status(run_id) and pgkd.stop(run_id).
Bad input raises pgkd.InputError (file, line and field in its message) before anything starts.
"""
from __future__ import annotations

import os
from pathlib import Path

from pgkd.basics.errors import BusUnavailable, InputError
from pgkd.config import RunConfig, load_config

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "ray_configs" / "demo.yaml"

__all__ = ["run", "demo", "resume", "status", "stop", "InputError"]


def _offline() -> None:
    """Models and data never come from a hub at run time; Ray's listeners stay on loopback."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def run(config: str | Path | RunConfig, overrides: dict | list[str] | None = None, run_id: str | None = None,
        progress=print, verbose: bool = False) -> dict:
    """Run a distillation to its end and return its report (also in runs_dir/<run_id>/report.json).

    config: a YAML file, or a RunConfig (pgkd.load_config). overrides: dotted keys, as a dict of values
    ({"teacher.max_batches": 20}) or --set strings (["teacher.max_batches=20"]). progress: where pgkd's lines go.
    """
    from pgkd.driver import run as drive_run

    _offline()
    if isinstance(config, RunConfig):
        if overrides:
            raise InputError("overrides apply to a config file; change the RunConfig's fields instead",
                             field="overrides")
    else:
        config = load_config(config, overrides)
    return drive_run(config, run_id=run_id, progress=progress, verbose=verbose)


def demo(overrides: dict | list[str] | None = None, progress=print, verbose: bool = False) -> dict:
    """The bundled demo: its dataset made if missing, then run with the embedded defaults."""
    from pgkd.basics.demo_dataset import main as make_demo

    make_demo()
    return run(DEMO_CONFIG, overrides, progress=progress, verbose=verbose)


def resume(run_id: str, runs_dir: str | Path = "runs", overrides: dict | list[str] | None = None, progress=print,
           verbose: bool = False) -> dict:
    """Continue a stopped or crashed run from its bus, checkpoints and saved config; returns the new report."""
    from pgkd.resuming import resume as resume_run

    _offline()
    return resume_run(run_id, runs_dir, overrides, progress=progress, verbose=verbose)


def status(run_id: str, runs_dir: str | Path = "runs") -> dict | None:
    """The live state of a run, read from its bus: teachers, students, scores, queues, the best so far. None
    when the run is not live (its bus is gone); its report.json then tells how it ended."""
    from pgkd.live_status import collect_status
    from pgkd.runs import run_bus

    bus, run_dir, _ = run_bus(run_id, runs_dir)
    config = load_config(run_dir / "config.yaml")
    try:
        return collect_status(bus, config)
    except BusUnavailable:
        return None


def stop(run_id: str, runs_dir: str | Path = "runs") -> str:
    """Ask a run to stop cleanly (it still writes its report and exports its best student). Returns what
    happened, in words: stop requested, already stopping, or not live."""
    from pgkd.bus.control import request_stop
    from pgkd.runs import driver_alive, run_bus

    bus, _, info = run_bus(run_id, runs_dir)
    try:
        first = request_stop(bus, "user", "pgkd stop")
    except BusUnavailable:
        if driver_alive(info):
            raise
        return (f"run {run_id} is not live: its driver and its bus are gone, nothing to stop "
                f"(`pgkd resume {run_id}` continues it)")
    said = "stop requested" if first else "run was already stopping"
    if info.get("embedded_redis") and not driver_alive(info):  # a crashed driver left its bus running
        bus.call(bus.client.shutdown)
        said += (f"; its driver is gone: stopped the run's embedded Redis (data kept; `pgkd resume {run_id}` "
                 f"continues the run)")
    return said
