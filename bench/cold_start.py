"""How long a newcomer waits: `pgkd demo` from a fresh HOME (no model, compile or embedding caches) and from a warm
one, timed to the teacher's first published batch.

    .venv/bin/python bench/cold_start.py --home fresh --convert-first --drop-caches   # after scripts/install.sh
    .venv/bin/python bench/cold_start.py --home fresh --drop-caches                   # the model converted in the run
    .venv/bin/python bench/cold_start.py --home warm                                  # this machine's own caches

--convert-first runs what scripts/install.sh runs last (the embedded teacher's one-time conversion) into the fresh
HOME before the clock starts, as a newcomer's install does. --drop-caches asks the kernel to drop the page cache
(needs root; said when refused). Milestones come from the run's own logs: engine ready, the teacher audit, the
first batch. Appends a row to bench/results/cold_start/cold_start.md.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "cold_start"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def drop_caches() -> str:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "page cache dropped"
    except OSError as exc:
        return f"page cache not dropped ({exc.strerror})"


def first_time(log: Path, pattern: str) -> float | None:
    for line in log.read_text(errors="replace").splitlines():
        if pattern in line and (m := STAMP.match(line)):
            return dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--home", choices=["fresh", "warm"], default="fresh")
    p.add_argument("--convert-first", action="store_true")
    p.add_argument("--drop-caches", action="store_true")
    args = p.parse_args()
    from pgkd.cluster.cpu import cpu_info

    env = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env.pop("PGKD_CACHE", None)
    home = Path(tempfile.mkdtemp(prefix="pgkd-home-")) if args.home == "fresh" else Path.home()
    env["HOME"] = str(home)
    if args.home == "fresh":  # torch's compile cache lives outside HOME
        shutil.rmtree(Path(tempfile.gettempdir()) / f"torchinductor_{os.environ.get('USER', 'root')}", ignore_errors=True)
    converted = None
    if args.convert_first:
        started = time.time()
        subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "pgkd.teacher.model_store"], env=env,
                       check=True, capture_output=True)
        converted = time.time() - started
    caches = drop_caches() if args.drop_caches else "page cache as it was"
    run_id = f"cold-{args.home}-{time.strftime('%H%M%S')}"
    started = time.time()
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "pgkd"), "demo", "--set", f"name={run_id}"], env=env,
                          cwd=REPO, capture_output=True, text=True)
    total = time.time() - started
    runs = sorted((REPO / "runs").glob(f"{run_id}-*"), key=lambda d: d.stat().st_mtime)
    if proc.returncode != 0 or not runs:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return 1
    run_dir = runs[-1]
    teacher = run_dir / "logs" / "teacher-0.log"
    marks = {name: (t - started if (t := first_time(teacher, pattern)) else None)
             for name, pattern in (("engine ready", "engine ready after"), ("audit done", "teacher audit:"),
                                   ("first batch", "batch 0 "))}
    report = json.loads((run_dir / "report.json").read_text())
    row = (f"| {time.strftime('%Y-%m-%d %H:%M')} | {args.home} HOME{' (model converted first, as install.sh)' if converted else ''}"
           f" | {caches} | {marks['engine ready']:.0f} | {marks['audit done']:.0f} | {marks['first batch']:.0f} | "
           f"{total:.0f} | {report['best_student']['test']['macro_f1']:.3f} | {cpu_info().describe()} |")
    OUT.mkdir(parents=True, exist_ok=True)
    table = OUT / "cold_start.md"
    if not table.exists():
        table.write_text("| when | HOME | page cache | engine ready s | audit done s | first batch s | demo total s | "
                         "exported test F1 | machine |\n|---|---|---|---:|---:|---:|---:|---:|---|\n")
    with table.open("a") as out:
        out.write(row + "\n")
    print(row)
    if args.home == "fresh":
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
