"""Who is in a run: actor names by pool and replica, the actors the run has had, and those scaled down.

Ray-free, so `pgkd status` and the driver's bookkeeping name actors without importing the actor classes.
"""
from __future__ import annotations

import re
import time

from pgkd.bus.client import Bus


def teacher_name(replica: int) -> str:
    return f"teacher-{replica}"

def actor_name(pool: str, replica: int) -> str:
    return teacher_name(replica) if pool == "teacher" else f"student-{pool}-{replica}"

def student_name(student, replica: int) -> str:
    """The actor of replica `replica` of a student pool (anything with a `name`: its settings block)."""
    return actor_name(student.name, replica)

def teacher_names(config) -> list[str]:
    """The configured teachers of a run config (its teacher block's `replicas`)."""
    return [teacher_name(i) for i in range(config.teacher.replicas)]

def student_names(config) -> list[tuple[str, object]]:
    """(actor name, settings block) of every configured student replica of a run config."""
    return [(student_name(s, i), s) for s in config.students for i in range(s.replicas)]

def pool_of(name: str) -> tuple[str, int] | None:
    """teacher-3 -> ("teacher", 3); student-minilm-1 -> ("minilm", 1); the evaluator is in no pool."""
    if name.startswith("teacher-"):
        return "teacher", int(name.rsplit("-", 1)[1])
    if name.startswith("student-"):
        pool, index = name[len("student-"):].rsplit("-", 1)
        return pool, int(index)
    return None

# ---- scaling: `pgkd scale` asks, the driver's watcher launches or retires actors
RETIRED = "retired"  # hash: actor name -> when it was told to finish

def retire(bus: Bus, actor: str) -> None:
    """Ask one teacher or student to finish what it is doing and exit (scaling down)."""
    bus.set_fields(RETIRED, {actor: time.time()})

def unretire(bus: Bus, actor: str) -> None:
    """A name scaled down and then up again comes back as a live actor."""
    bus.call(bus.client.hdel, bus.key(RETIRED), actor)

def retired(bus: Bus) -> set[str]:
    return set(bus.get_fields(RETIRED))

def is_retired(bus: Bus, actor: str) -> bool:
    return bool(bus.call(bus.client.hexists, bus.key(RETIRED), actor))

# ---- which actors the run has had: the configured ones plus any `pgkd scale` added
def register_actor(bus: Bus, role: str, name: str) -> None:
    bus.call(bus.client.sadd, bus.key(f"actors:{role}"), name)

def actor_names(bus: Bus, role: str, configured: list[str] = ()) -> list[str]:
    """Every teacher or student of the run so far, in replica order (teacher-2 before teacher-10)."""
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
