"""Where a run's wall time goes: teacher and student busy fractions, evaluator lag, Redis bus overhead.

    .venv/bin/python bench/system.py [--config ray_configs/demo.yaml] [--students 1,2] [--set KEY=VALUE ...]
    .venv/bin/python bench/system.py --run runs/RUN_ID [runs/OTHER ...]       # finished runs, nothing launched

For each count in --students it launches `pgkd run CONFIG --set students=<the config's first N students>` as a
subprocess (one at a time) and reads runs/<id>/report.json:
- teacher busy: the teacher's busy_seconds (generating and labelling) / the run's wall time (elapsed_seconds,
  from actor launch to stop, engine start included);
- students busy: the sum of each student's checkpoint train_seconds / wall;
- evaluator lag: report created - checkpoint created, per scored version (queueing + loading + scoring);
- bus: Redis INFO at the end of the run (report.json `bus`): commands and bytes, per second of the embedded
  server's uptime (it starts a few seconds before Ray), and the stream lengths.
Writes bench/results/system/system.md and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "system"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "ray_configs" / "demo.yaml"))
    p.add_argument("--students", default="1,2", help="comma-separated: how many of the config's students to keep")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more overrides for every run")
    p.add_argument("--run", nargs="+", help="existing finished run folders: tabulate them, launch nothing")
    args = p.parse_args()
    run_dirs = [Path(r) for r in args.run] if args.run else [launch(args, int(n)) for n in args.students.split(",")]
    rows = [measure(d) for d in run_dirs]
    text = table(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "system.md").write_text(text + "\n")
    (OUT / "system.json").write_text(json.dumps(rows, indent=2))
    print(text)
    return 0


def launch(args, n_students: int) -> Path:
    config = yaml.safe_load(Path(args.config).read_text())
    students = (config.get("students") or [{}])[:n_students]
    run_id = f"system-{n_students}st-{time.strftime('%Y%m%d-%H%M%S')}"
    command = [str(REPO / ".venv" / "bin" / "pgkd"), "run", args.config, "--run-id", run_id,
               "--set", f"students={json.dumps(students)}"] + [a for s in args.set for a in ("--set", s)]
    print("$ " + " ".join(command), file=sys.stderr)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / f"{run_id}.log").open("w") as log:
        subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    runs_dir = Path(config.get("runs_dir", "runs"))
    return (REPO / runs_dir / run_id) if not runs_dir.is_absolute() else runs_dir / run_id


def measure(run_dir: Path) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    wall = report["elapsed_seconds"]
    teacher_busy = report["teacher"]["totals"].get("busy_seconds", 0.0)
    train: dict[str, float] = {}
    for c in report.get("checkpoints", []):
        train[c["student"]] = train.get(c["student"], 0.0) + c["train_seconds"]
    created = {(c["student"], c["version"]): c["created"] for c in report.get("checkpoints", [])}
    lags = [v["created"] - created[(v["student"], v["version"])] for v in report["versions"]
            if (v["student"], v["version"]) in created]
    bus = report.get("bus") or {}
    uptime = bus.get("uptime_in_seconds") or None
    return {"run": run_dir.name, "students": len(report["config"]["students"]), "wall_s": wall,
            "stopped_by": report["stopped_by"]["reason"], "teacher_busy": teacher_busy / wall,
            "teacher_batches": report["teacher"]["totals"].get("batches", 0),
            "students_busy": {s.removeprefix("student-"): t / wall for s, t in sorted(train.items())},
            "evaluator_busy": sum(v["eval_seconds"] for v in report["versions"]) / wall,
            "versions": len(report["versions"]),
            "lag_mean_s": statistics.mean(lags) if lags else None, "lag_max_s": max(lags) if lags else None,
            "commands": bus.get("total_commands_processed"), "uptime_s": uptime,
            "commands_per_s": bus["total_commands_processed"] / uptime if uptime else None,
            "in_bytes": bus.get("total_net_input_bytes"), "out_bytes": bus.get("total_net_output_bytes"),
            "streams": bus.get("streams")}


def table(rows: list[dict]) -> str:
    lines = [("| run | students | wall s | stopped by | teacher busy | students busy (train s / wall) | "
             "evaluator busy | versions scored | eval lag mean / max s | Redis cmds/s | Redis in / out MB "
             "(KB/s) | stream lengths (examples, checkpoints, reports) |"),
             "|---|---:|---:|---|---:|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        busy = ", ".join(f"{s} {f:.1%}" for s, f in r["students_busy"].items()) or "n/a"
        lag = f"{r['lag_mean_s']:.1f} / {r['lag_max_s']:.1f}" if r["lag_mean_s"] is not None else "n/a"
        if r["commands"] is not None:
            rate = (r["in_bytes"] + r["out_bytes"]) / r["uptime_s"] / 1e3
            cmds = f"{r['commands_per_s']:.0f}"
            traffic = f"{r['in_bytes'] / 1e6:.2f} / {r['out_bytes'] / 1e6:.2f} ({rate:.0f})"
            s = r["streams"]
            streams = f"{s['examples']}, {s['checkpoints']}, {s['reports']}"
        else:
            cmds, traffic, streams = "n/a", "n/a", "n/a"
        lines.append(f"| {r['run']} | {r['students']} | {r['wall_s']:.0f} | {r['stopped_by']} | "
                     f"{r['teacher_busy']:.0%} ({r['teacher_batches']:.0f} batches) | {busy} | "
                     f"{r['evaluator_busy']:.1%} | {r['versions']} | {lag} | {cmds} | {traffic} | {streams} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
