"""Live state of a run read from Redis: for the driver's progress line and `pgkd status`."""
from __future__ import annotations

from pgkd.bus import pool_queue
from pgkd.bus.client import CHECKPOINTS, EXAMPLES, REPORTS, Bus
from pgkd.bus.control import BEST, stop_requested, teacher_stats_key
from pgkd.bus.messages import Checkpoint, EvalReport
from pgkd.bus.roster import actor_names, retired, student_names, teacher_names


def _floats(fields: dict[str, str]) -> dict[str, float]:
    out = {}
    for key, value in fields.items():
        try:
            out[key] = float(value)
        except ValueError:
            pass
    return out


def teacher_totals(bus: Bus, teachers: list[str]) -> tuple[dict[str, float], dict[str, dict]]:
    per = {t: _floats(bus.get_fields(teacher_stats_key(t))) for t in teachers}
    totals: dict[str, float] = {}
    for stats in per.values():
        for key, value in stats.items():
            totals[key] = totals.get(key, 0.0) + value
    return totals, per


def collect_status(bus: Bus, config) -> dict:
    teachers = actor_names(bus, "teacher", teacher_names(config))
    students = actor_names(bus, "student", [name for name, _ in student_names(config)])
    gone = retired(bus)
    totals, per_teacher = teacher_totals(bus, teachers)
    reports = bus.read_all(REPORTS, EvalReport)
    latest = {}
    for report in reports:
        latest[report.student] = report
    best = bus.get_model(BEST, Checkpoint)
    stop = stop_requested(bus)
    busy = totals.get("busy_seconds", 0.0)
    return {
        "teacher": totals,
        "teachers": {t: per_teacher[t] | {"state": _state(bus.get_fields(f"status:{t}"), t, gone)}
                     for t in teachers},
        "teacher_tokens_per_s": (totals.get("completion_tokens", 0.0) / busy) if busy else 0.0,
        "students": {s: _with_state(bus.get_fields(f"status:{s}"), s, gone) for s in students},
        "scores": {s: {"version": r.version, "macro_f1": r.macro_f1, "accuracy": r.accuracy,
                       "examples_seen": r.examples_seen} for s, r in latest.items()},
        "versions_scored": len(reports),
        "best": None if best is None else {"student": best.student, "version": best.version,
                                           "macro_f1": max((r.macro_f1 for r in reports if r.student == best.student
                                                            and r.version == best.version), default=None)},
        "queues": {"examples_stream": bus.stream_length(EXAMPLES),
                   **{f"examples_lag:{s}": bus.lag(EXAMPLES, f"student:{s}") for s in students},
                   "checkpoints_lag:evaluator": bus.lag(CHECKPOINTS, "evaluator")},
        "pool": pool_status(bus),
        "stop": None if stop is None else stop.model_dump(),
    }


def pool_status(bus: Bus) -> dict | None:
    """The pool scorer's progress (None when the run has no pool): size, shards, rounds, texts scored, bad rows,
    strategy, and what the teachers took: queued now, tried (labelled set)."""
    state = pool_queue.state(bus)
    if not state:
        return None
    numbers = _floats(state)
    return {**numbers, "strategy": state.get("strategy", "-"), "checkpoint": state.get("checkpoint", "-"),
            "state": bus.get_fields("status:pool-scorer").get("state", "starting"),
            "queued": pool_queue.queued(bus), "labelled": pool_queue.labelled_count(bus)}


def pool_line(pool: dict) -> str:
    return (f"pool: {pool['state']}; {pool.get('pool_rows', 0):,.0f} rows in {pool.get('shards_total', 0):.0f} "
            f"shards; round {pool.get('rounds', 0):.0f} ({pool['strategy']}, {pool['checkpoint']}); "
            f"{pool.get('texts_scored', 0):,.0f} texts scored, {pool.get('shards_done', 0):.0f} shards done, "
            f"{pool.get('bad_rows', 0):.0f} bad rows; {pool['queued']} queued, {pool['labelled']} labelled")


def _state(fields: dict[str, str], actor: str, gone: set[str]) -> str:
    state = fields.get("state", "starting")
    return f"{state} (scaled down)" if actor in gone else state


def _with_state(fields: dict[str, str], actor: str, gone: set[str]) -> dict[str, str]:
    return fields | {"state": _state(fields, actor, gone)}


def progress_line(status: dict, elapsed: float) -> str:
    t = status["teacher"]
    scores = " ".join(f"{s}=v{v['version']}:{v['macro_f1']:.3f}" for s, v in status["scores"].items()) or "no scores yet"
    best = status["best"]
    best_text = f"best {best['student']}@v{best['version']} {best['macro_f1']:.3f}" if best and best["macro_f1"] else "best -"
    queues = " ".join(f"{k.split(':')[-1]}={v}" for k, v in status["queues"].items() if "lag" in k)
    states = ",".join(s.get("state", "?") for s in status["teachers"].values())
    pool = status.get("pool")
    pool_text = (f" | pool round {pool.get('rounds', 0):.0f}, {pool.get('texts_scored', 0):,.0f} scored, "
                 f"{pool['labelled']} labelled" if pool else "")
    return (f"[{elapsed:5.0f}s] teacher({states}) generated {t.get('generated', 0):.0f} kept {t.get('kept', 0):.0f} "
            f"({status['teacher_tokens_per_s']:.0f} tok/s) | {scores} | {best_text} | lag {queues}{pool_text}")


def format_status(status: dict) -> str:
    """A readable multi-line view for `pgkd status`."""
    lines = [progress_line(status, 0).split("] ", 1)[1]]
    lines.append("teachers:")
    for name, stats in status["teachers"].items():
        lines.append(f"  {name}: {stats.get('state')} generated {stats.get('generated', 0):.0f} "
                     f"kept {stats.get('kept', 0):.0f} batches {stats.get('batches', 0):.0f}")
    lines.append("students:")
    for name, fields in status["students"].items():
        score = status["scores"].get(name)
        score_text = f"v{score['version']} macro-F1 {score['macro_f1']:.4f}" if score else "not scored yet"
        lines.append(f"  {name}: {fields.get('state', 'starting')} {score_text}")
    lines.append("queues: " + ", ".join(f"{k}={v}" for k, v in status["queues"].items()))
    if status.get("pool"):
        lines.append(pool_line(status["pool"]))
    if status["stop"]:
        lines.append(f"stopped: {status['stop']['reason']} {status['stop'].get('detail', '')}")
    return "\n".join(lines)
