"""Run-wide control state on the bus: the stop flag, the newest report, the best student, actor status."""
from __future__ import annotations

from pgkd.bus import Bus
from pgkd.messages import EvalReport, Stop

STOP, LATEST_REPORT, BEST = "stop", "report:latest", "best"
TEACHERS_DONE = "teachers_done"  # a field of the "flags" hash: students then train on what is left
CONTROL = "control"  # stream of ScaleRequest messages, read by the driver


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


# ---- scaling: `pgkd scale` asks, the driver's watcher launches or retires actors
RETIRED = "retired"  # hash: actor name -> when it was told to finish


def retire(bus: Bus, actor: str) -> None:
    """Ask one teacher or student to finish what it is doing and exit (scaling down)."""
    import time

    bus.set_fields(RETIRED, {actor: time.time()})


def unretire(bus: Bus, actor: str) -> None:
    """A name scaled down and then up again comes back as a live actor."""
    bus.call(bus.client.hdel, bus.key(RETIRED), actor)


def retired(bus: Bus) -> set[str]:
    return set(bus.get_fields(RETIRED))


def is_retired(bus: Bus, actor: str) -> bool:
    return bool(bus.call(bus.client.hexists, bus.key(RETIRED), actor))


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


# ---- which actors the run has had: the configured ones plus any `pgkd scale` added
def register_actor(bus: Bus, role: str, name: str) -> None:
    bus.call(bus.client.sadd, bus.key(f"actors:{role}"), name)


def actor_names(bus: Bus, role: str, configured: list[str] = ()) -> list[str]:
    """Every teacher or student of the run so far, in replica order (teacher-2 before teacher-10)."""
    import re

    names = set(configured) | set(bus.call(bus.client.smembers, bus.key(f"actors:{role}")))
    return sorted(names, key=lambda n: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", n)])


def restart_roster(bus: Bus, launching: set[str]) -> None:
    """A resumed session launches the config's replicas: those names work again, and every other actor the run
    had counts as scaled down (so patience does not wait on a student that will never come back)."""
    for name in actor_names(bus, "teacher") + actor_names(bus, "student"):
        if name in launching:
            unretire(bus, name)
        else:
            retire(bus, name)
