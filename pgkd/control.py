"""Run-wide control state on the bus: the stop flag, the newest report, the best student, actor status."""
from __future__ import annotations

from pgkd.bus import Bus
from pgkd.messages import EvalReport, Stop

STOP, LATEST_REPORT, BEST = "stop", "report:latest", "best"
TEACHERS_DONE = "teachers_done"  # a field of the "flags" hash: students then train on what is left



def request_stop(bus: Bus, reason: str, detail: str = "") -> bool:
    """First stop wins; later requests keep the first reason."""
    return bus.set_once(STOP, Stop(reason=reason, detail=detail))


def stop_requested(bus: Bus) -> Stop | None:
    return bus.get_model(STOP, Stop)


def latest_report(bus: Bus) -> EvalReport | None:
    return bus.get_model(LATEST_REPORT, EvalReport)


def set_status(bus: Bus, actor: str, **fields) -> None:
    bus.set_fields(f"status:{actor}", fields)


def teacher_stats_key(actor: str) -> str:
    return f"stats:teacher:{actor}"


def teachers_done(bus: Bus) -> bool:
    return bool(bus.get_fields("flags").get(TEACHERS_DONE))
