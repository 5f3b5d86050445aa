"""Run-wide control state on the bus: the stop flag, the newest report, the best student, actor status."""
from __future__ import annotations

from pgkd.bus.client import Bus
from pgkd.bus.messages import EvalReport, Stop

STOP, LATEST_REPORT, BEST = "stop", "report:latest", "best"
TEACHER_AUDIT = "teacher:audit"  # the TeacherAudit every replica follows (written once, by replica 0)
BEST_CHOICE = "best:choice"  # hash: why BEST is the version it is (selection score, gain, margin, reason)
TEACHERS_DONE = "teachers_done"  # a field of the "flags" hash: students then train on what is left
CONTROL = "control"  # stream of ScaleRequest messages, read by the driver
LOOP_MODE = "loop_mode"  # a field of the "flags" hash, set before any actor starts: "rounds" or "async"


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


def set_loop_mode(bus: Bus, mode: str) -> None:
    bus.set_fields("flags", {LOOP_MODE: mode})


def in_rounds(bus: Bus) -> bool:
    """loop.mode rounds: the roles take turns (write a batch, train on it, score it, steer), the paper's loop."""
    return bus.get_fields("flags").get(LOOP_MODE) == "rounds"


# ---- resuming: the stop that ended a session is kept in the run's history, then cleared
STOP_HISTORY = "stop_history"


def clear_stop(bus: Bus) -> Stop | None:
    """Move the stop flag into the history list so a resumed run can go on; returns the stop it cleared."""
    previous = stop_requested(bus)
    if previous is not None:
        bus.call(bus.client.rpush, bus.key(STOP_HISTORY), previous.model_dump_json())
        bus.call(bus.client.delete, bus.key(STOP))
    bus.call(bus.client.hdel, bus.key("flags"), TEACHERS_DONE)
    return previous


def stop_history(bus: Bus) -> list[Stop]:
    return [Stop.model_validate_json(raw) for raw in bus.call(bus.client.lrange, bus.key(STOP_HISTORY), 0, -1)]
