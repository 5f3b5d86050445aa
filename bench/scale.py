"""The scale curve: push examples through teacher -> Redis -> students -> evaluator and watch what grows.

    .venv/bin/python bench/scale.py ../shared/data/banking77 [--examples 100000] [--sample-every 5]

A real `pgkd run` (local Ray, embedded Redis) with the simulated teacher at full speed (seconds_per_example 0,
allow_repeats: once the reservoir is spent, texts repeat, marked), two students (frozen MiniLM and n-gram), until
the teacher has written --examples and everything is trained and scored. While it runs, every --sample-every
seconds: Redis `INFO memory` (used_memory), the examples stream's length, and the resident memory (RSS) of the
driver, the redis-server and every actor (pids from the actors' status in Redis). After it, from the report:
per-version train time against the examples a student has seen, and the evaluator's lag (versions waiting, and
seconds from checkpoint to report). Writes bench/results/scale/<run>.json, .md and .png.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "results" / "scale"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--examples", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=256, help="examples per teacher batch (16 classes x 16)")
    p.add_argument("--min-new", type=int, default=2500, help="students.*.min_new_examples")
    p.add_argument("--replay", type=int, default=4096, help="students.*.replay")
    p.add_argument("--sample-every", type=float, default=5.0)
    p.add_argument("--timeout", type=float, default=5400)
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    run_id = f"scale-{time.strftime('%Y%m%d-%H%M%S')}"
    config = write_config(args, OUT / f"{run_id}.yaml")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    log = (OUT / f"{run_id}.log").open("w")
    started = time.time()
    driver = subprocess.Popen([sys.executable, "-m", "pgkd.cli", "run", str(config), "--run-id", run_id],
                              cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    samples = watch(driver, OUT / "runs" / run_id, args, started)
    driver.wait()
    report = json.loads((OUT / "runs" / run_id / "report.json").read_text())
    result = summarize(run_id, args, report, samples, time.time() - started)
    (OUT / f"{run_id}.json").write_text(json.dumps(result, indent=2))
    text = write_markdown(result, OUT / f"{run_id}.md")
    plot(result, OUT / f"{run_id}.png")
    print(text)
    return driver.returncode


def write_config(args, path: Path) -> Path:
    per_class = 16
    classes = max(1, args.batch // per_class)
    path.write_text(f"""
name: scale
runs_dir: {OUT / 'runs'}
dataset:
  path: {Path(args.dataset).resolve()}
  task: benchmark
  seeds_per_class: 10
  max_validation: 770
teacher:
  backend: simulated
  classes_per_batch: {classes}
  examples_per_class: {per_class}
  max_batches: {-(-args.examples // (classes * per_class))}
  allow_repeats: true
students:
  - name: minilm
    min_new_examples: {args.min_new}
    replay: {args.replay}
  - name: ngram
    kind: ngram
    min_new_examples: {args.min_new}
    replay: {args.replay}
loop:
  patience: 1000
  max_versions: 100000
  time_budget_s: {args.timeout}
ray:
  dashboard: false
""")
    return path


def watch(driver: subprocess.Popen, run_dir: Path, args, started: float) -> list[dict]:
    """Memory and stream length every few seconds until the driver exits."""
    import psutil

    from pgkd.bus.client import EXAMPLES, Bus
    from pgkd.bus.roster import actor_names

    samples, bus = [], None
    while driver.poll() is None:
        time.sleep(args.sample_every)
        if bus is None and (run_dir / "run.json").is_file():
            bus = Bus(json.loads((run_dir / "run.json").read_text())["bus_url"], run_dir.name, retry_seconds=2)
        if bus is None:
            continue
        try:
            info = bus.call(bus.client.info, "memory")
            generated = sum(float(bus.get_fields(f"stats:teacher:{t}").get("generated", 0))
                            for t in actor_names(bus, "teacher"))
            pids = {"driver": driver.pid}
            for actor in actor_names(bus, "teacher") + actor_names(bus, "student") + ["evaluator"]:
                pid = bus.get_fields(f"status:{actor}").get("pid")
                if pid:
                    pids[actor] = int(pid)
            port = bus.url.rsplit(":", 1)[1].split("/")[0]
            pids |= {"redis-server": p.pid for p in psutil.process_iter(["name", "cmdline"])
                     if (p.info["name"] or "").startswith("redis-server") and f":{port}" in " ".join(
                         p.info["cmdline"] or [])}
            rss = {}
            for name, pid in pids.items():
                try:
                    rss[name] = psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    pass
            samples.append({"t": round(time.time() - started, 1), "generated": generated,
                            "redis_used_memory": info["used_memory"], "examples_stream": bus.stream_length(EXAMPLES),
                            "rss": rss})
        except Exception as exc:  # the run is ending: Redis goes away
            samples.append({"t": round(time.time() - started, 1), "error": str(exc)[:200]})
    return samples


def summarize(run_id: str, args, report: dict, samples: list[dict], seconds: float) -> dict:
    reports = {(v["student"], v["version"]): v for v in report["versions"]}
    versions = []
    for c in report["checkpoints"]:
        scored = reports.get((c["student"], c["version"]))
        lag = None if scored is None else round(scored["created"] - c["created"], 1)
        versions.append({"student": c["student"], "version": c["version"], "examples_seen": c["examples_seen"],
                         "train_seconds": round(c["train_seconds"], 2), "epochs": c["epochs"], "eval_lag_s": lag})
    good = [s for s in samples if "rss" in s]
    peak = {}
    for s in good:
        for name, value in s["rss"].items():
            peak[name] = max(peak.get(name, 0), value)
    busy = report["teacher"]["totals"].get("busy_seconds", 0)
    return {"run_id": run_id, "seconds": round(seconds, 1), "cpu_flags": cpu_flags(),
            "stopped_by": report["stopped_by"], "generated": report["teacher"]["totals"].get("generated", 0),
            "examples_per_second": round(report["teacher"]["totals"].get("generated", 0) / max(1, seconds), 1),
            "teacher_busy_seconds": busy, "redis_peak_used_memory": max((s["redis_used_memory"] for s in good), default=0),
            "stream_peak_length": max((s["examples_stream"] for s in good), default=0),
            "peak_rss": peak, "versions": versions, "samples": samples,
            "best": report.get("best_student", {}) and {k: report["best_student"][k] for k in ("student", "version")},
            "settings": vars(args)}


def cpu_flags() -> str:
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return " ".join(f for f in wanted if f in flags) + f"; {os.cpu_count()} cores"


def write_markdown(result: dict, path: Path) -> str:
    mib = 1 / 2**20
    lines = [f"### Scale run {result['run_id']} ({result['cpu_flags']})", "",
             f"{result['generated']:.0f} examples written in {result['seconds']:.0f} s "
             f"({result['examples_per_second']} per second end to end, the teacher busy {result['teacher_busy_seconds']:.0f} s); "
             f"stopped by {result['stopped_by']['reason']}.", "",
             f"Redis used_memory peak {result['redis_peak_used_memory'] * mib:.1f} MiB; examples stream peak "
             f"{result['stream_peak_length']} batches.", "",
             "| process | peak RSS (MiB) |", "|---|---:|"]
    lines += [f"| {name} | {value * mib:.0f} |" for name, value in sorted(result["peak_rss"].items())]
    lines += ["", "| student | version | examples seen | train s | epochs | checkpoint -> report s |",
              "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {v['student']} | {v['version']} | {v['examples_seen']} | {v['train_seconds']} | {v['epochs']} | "
              f"{v['eval_lag_s']} |" for v in result["versions"]]
    text = "\n".join(lines)
    path.write_text(text + "\n")
    return text


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for student in sorted({v["student"] for v in result["versions"]}):
        rows = [v for v in result["versions"] if v["student"] == student]
        left.plot([v["examples_seen"] for v in rows], [v["train_seconds"] for v in rows], marker="o", label=student)
    left.set_xlabel("examples the student has seen")
    left.set_ylabel("seconds to train the version")
    left.legend()
    left.grid(alpha=0.3)
    good = [s for s in result["samples"] if "rss" in s]
    right.plot([s["generated"] for s in good], [s["redis_used_memory"] / 2**20 for s in good], label="Redis used_memory")
    for name in sorted({n for s in good for n in s["rss"]}):
        right.plot([s["generated"] for s in good], [s["rss"].get(name, 0) / 2**20 for s in good], label=f"RSS {name}")
    right.set_xlabel("examples written")
    right.set_ylabel("MiB")
    right.legend(fontsize=6)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
