"""Scaling with replicas: the simulated teacher paced like a GPU-served LLM (0.5 s per example, a measuring
instrument) with 1, 2 and 4 teacher replicas and 1 and 2 student replicas, through pgkd's own actors.

    .venv/bin/python bench/replicas.py ../shared/data/banking77 [--teachers 1,2,4] [--students 1,2] [--seconds 150]

Each run has a fixed time budget (loop.time_budget_s) and no other stop. From report.json:
- kept per second: the sum over teacher replicas of examples kept, over their mean writing window (from the loop's
  start to its last batch end: `wall_seconds`; engine loading is outside it);
- versions per minute: student versions after v0, over the same window;
- efficiency: throughput at N replicas / (N x throughput at 1), for the role that was scaled.
The machine has 2 cores: a paced teacher sleeps, so its replicas should scale until something that does work
(the students, the evaluator, Redis, the simulated teacher's nearest-text search) fills the cores.
Writes bench/results/replicas/replicas.md (+ .json) and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "replicas"


def run(data: Path, teachers: int, students: int, seconds: float, pace: float) -> Path:
    run_id = f"replicas-t{teachers}-s{students}"
    config = {"name": run_id, "runs_dir": str(OUT / "runs"),
              "dataset": {"path": str(data.resolve()), "task": data.name, "seeds_per_class": 5, "max_validation": 770},
              "teacher": {"backend": "simulated", "seconds_per_example": pace, "replicas": teachers,
                          "classes_per_batch": 4, "examples_per_class": 4, "max_ahead_batches": 8},
              "students": [{"name": "minilm", "replicas": students, "min_new_examples": 16}],
              "loop": {"patience": 1000, "max_versions": 10000, "time_budget_s": seconds}}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{run_id}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    with (OUT / f"{run_id}.log").open("w") as log:
        subprocess.run([str(REPO / ".venv" / "bin" / "pgkd"), "run", str(path), "--run-id", run_id], cwd=REPO,
                       env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    return OUT / "runs" / run_id


def measure(run_dir: Path, teachers: int, students: int) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    replicas = report["teacher"]["per_replica"]
    windows = [r.get("wall_seconds", 0.0) for r in replicas.values() if r.get("wall_seconds")]
    window = sum(windows) / len(windows) if windows else float("nan")
    kept = sum(float(r.get("kept", 0)) for r in replicas.values())
    busy = sum(float(r.get("busy_seconds", 0)) for r in replicas.values())
    versions = sum(1 for c in report.get("checkpoints", []) if c["version"] > 0)
    train = sum(c["train_seconds"] for c in report.get("checkpoints", []))
    return {"teachers": teachers, "students": students, "wall_s": report["elapsed_seconds"], "window_s": window,
            "kept": kept, "kept_per_s": kept / window, "versions_per_min": versions / window * 60,
            "teacher_busy": busy / teachers / window, "student_busy": train / students / window,
            "stopped_by": report["stopped_by"]["reason"]}


def table(rows: list[dict], machine: str, pace: float) -> str:
    base = {r["students"]: r for r in rows if r["teachers"] == 1}
    one_student = {r["teachers"]: r for r in rows if r["students"] == 1}
    lines = [f"Machine: {machine}. Simulated teacher paced at {pace:g} s per example; one run per row.", "",
             "| teacher replicas | student replicas | kept/s | teacher efficiency | versions/min | student "
             "efficiency | teacher busy (sleep incl.) | student busy |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["students"], r["teachers"])):
        b = base.get(r["students"])
        t_eff = r["kept_per_s"] / (r["teachers"] * b["kept_per_s"]) if b else float("nan")
        s1 = one_student.get(r["teachers"]) if r["students"] > 1 else None
        s_eff = r["versions_per_min"] / (r["students"] * s1["versions_per_min"]) if s1 else float("nan")
        lines.append(f"| {r['teachers']} | {r['students']} | {r['kept_per_s']:.2f} | {t_eff:.2f} | "
                     f"{r['versions_per_min']:.1f} | {s_eff:.2f} | {r['teacher_busy']:.0%} | {r['student_busy']:.0%} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--teachers", default="1,2,4")
    p.add_argument("--students", default="1,2")
    p.add_argument("--seconds", type=float, default=150)
    p.add_argument("--pace", type=float, default=0.5)
    args = p.parse_args()
    from pgkd.cluster.cpu import cpu_info

    rows = []
    for students in map(int, args.students.split(",")):
        for teachers in map(int, args.teachers.split(",")):
            print(f"{time.strftime('%H:%M:%S')} teachers {teachers}, students {students} ...", file=sys.stderr,
                  flush=True)
            rows.append(measure(run(args.data, teachers, students, args.seconds, args.pace), teachers, students))
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
            (OUT / "replicas.json").write_text(json.dumps(rows, indent=1))
    text = table(rows, cpu_info().describe(), args.pace)
    (OUT / "replicas.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
