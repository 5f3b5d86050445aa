"""`pgkd scale`: what a ScaleRequest means for a live run. Planning is pure; the watcher carries it out."""
from __future__ import annotations

from dataclasses import dataclass, field

from pgkd.basics.errors import InputError
from pgkd.bus.messages import ScaleRequest

TEACHERS = "teacher"  # the pool key of the teacher replicas; student pools are keyed by their config name


@dataclass
class ScalePlan:
    launch: list[tuple[str, int]] = field(default_factory=list)  # (pool, replica index)
    retire: list[tuple[str, int]] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"start {pool}#{i}" for pool, i in self.launch] + [f"retire {pool}#{i}" for pool, i in self.retire]
        return ", ".join(parts) or "nothing to change"


def wanted_sizes(request: ScaleRequest) -> dict[str, int]:
    sizes = dict(request.students)
    if request.teachers is not None:
        sizes[TEACHERS] = request.teachers
    return sizes


def plan_scale(live: dict[str, list[int]], request: ScaleRequest) -> ScalePlan:
    """Grow a pool with the lowest free replica indexes (a returning name resumes its own state); shrink it by
    retiring the highest ones, so teacher-0 and student-x-0 are the last to go."""
    plan = ScalePlan()
    for pool, wanted in wanted_sizes(request).items():
        running = sorted(live.get(pool, []))
        free = (i for i in range(wanted + len(running)) if i not in running)
        plan.launch += [(pool, next(free)) for _ in range(max(0, wanted - len(running)))]
        plan.retire += [(pool, i) for i in running[wanted:][::-1]] if wanted < len(running) else []
    return plan


def check_request(request: ScaleRequest, student_pools: list[str]) -> None:
    """Refuse, before it reaches the bus, a student name the run's config does not have."""
    unknown = sorted(set(request.students) - set(student_pools))
    if unknown:
        raise InputError(f"no student named {unknown} in this run (configured: {student_pools})", field="--students")
    if request.teachers is None and not request.students:
        raise InputError("nothing to scale: give --teachers N and/or --students M", field="--teachers")
