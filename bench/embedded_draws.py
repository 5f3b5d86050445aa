"""Real runs with the embedded teacher over seed draws: is the exported student above its seeds-only student?

    .venv/bin/python bench/embedded_draws.py ray_configs/ag_news.yaml --draws 5 --budget-s 360 [--prefix e27]
        [--set KEY=VALUE ...]

Per draw D: `pgkd run CONFIG --run-id <prefix>-<name>-dD --set dataset.sample_seed=D --set teacher.seed=D
--set students.0.seed=D --set loop.time_budget_s=B` (a run already finished is read, not run again). Reads each
run's report.json and writes bench/results/embedded-<prefix>-<name>.md: per draw the seeds-only and exported test
macro-F1, what the teacher kept, the versions and the rule's line; then the paired difference over draws.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--budget-s", type=float, default=360)
    p.add_argument("--prefix", default="emb")
    p.add_argument("--runs-dir", default=str(REPO / "runs"))
    p.add_argument("--set", action="append", default=[], dest="overrides")
    args = p.parse_args()
    import yaml

    name = yaml.safe_load(Path(args.config).read_text()).get("name", Path(args.config).stem)
    rows = []
    for draw in range(args.draws):
        run_id = f"{args.prefix}-{name}-d{draw}"
        report = Path(args.runs_dir) / run_id / "report.json"
        if not report.is_file():
            sets = [f"dataset.sample_seed={draw}", f"teacher.seed={draw}", f"students.0.seed={draw}",
                    f"loop.time_budget_s={args.budget_s:g}", f"runs_dir={args.runs_dir}", *args.overrides]
            command = [str(REPO / ".venv" / "bin" / "pgkd"), "run", args.config, "--run-id", run_id]
            command += [item for s in sets for item in ("--set", s)]
            started = time.time()
            log = Path(args.runs_dir) / f"{run_id}.terminal.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as out:
                code = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT).returncode
            print(f"{run_id}: exit {code} after {time.time() - started:.0f} s (terminal in {log})", flush=True)
            if not report.is_file():
                continue
        rows.append(summarize(run_id, json.loads(report.read_text())))
        print(f"{run_id}: seeds-only {rows[-1]['seeds_only']:.4f} exported {rows[-1]['exported']:.4f}", flush=True)
    text = table(rows, args, name)
    out = REPO / "bench" / "results" / f"embedded-{args.prefix}-{name}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    print(text)
    return 0


def summarize(run_id: str, report: dict) -> dict:
    best = report["best_student"]
    totals = report["teacher"]["totals"]
    examples = report.get("examples", {})
    return {"run": run_id, "seeds_only": best["seeds_only_test"]["macro_f1"], "exported": best["test"]["macro_f1"],
            "version": best["version"], "versions": len(report["versions"]), "stopped": report["stopped_by"]["reason"],
            "kept": int(totals.get("kept", 0)), "generated": int(totals.get("generated", 0)),
            "pool": examples.get("pool", 0), "pool_accuracy": examples.get("pool_label_accuracy"),
            "why": (best.get("choice") or {}).get("reason", "")}


def table(rows: list[dict], args, name: str) -> str:
    lines = [f"### {name}: embedded teacher, {args.budget_s:g} s per run, {len(rows)} draws", "",
             "| run | seeds-only test F1 | exported test F1 | exported − seeds-only | version (of) | stopped | kept / "
             "generated | pool labels (accuracy) | why |", "|---|---:|---:|---:|---|---|---:|---|---|"]
    for r in rows:
        acc = f" ({r['pool_accuracy']:.2f})" if r["pool_accuracy"] is not None else ""
        lines.append(f"| {r['run']} | {r['seeds_only']:.4f} | {r['exported']:.4f} | {r['exported'] - r['seeds_only']:+.4f} "
                     f"| v{r['version']} ({r['versions']}) | {r['stopped']} | {r['kept']} / {r['generated']} | "
                     f"{r['pool']}{acc} | {r['why']} |")
    if len(rows) > 1:
        diffs = [r["exported"] - r["seeds_only"] for r in rows]
        from scipy import stats

        half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
        lines += ["", f"Seeds-only {statistics.mean(r['seeds_only'] for r in rows):.4f} ± "
                  f"{statistics.stdev(r['seeds_only'] for r in rows):.4f}; exported "
                  f"{statistics.mean(r['exported'] for r in rows):.4f} ± {statistics.stdev(r['exported'] for r in rows):.4f}; "
                  f"difference {statistics.mean(diffs):+.4f} [{statistics.mean(diffs) - half:+.4f}, "
                  f"{statistics.mean(diffs) + half:+.4f}] (95% t-interval, n={len(diffs)}); below seeds-only in "
                  f"{sum(d < 0 for d in diffs)} of {len(diffs)}."]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
