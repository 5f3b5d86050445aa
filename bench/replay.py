"""Versions that do not forget: selection macro-F1 of successive versions with the simulated perfect teacher, for
each way a version replays the old examples (students[].replay_by: random or class; replay: null, a full retrain).

    .venv/bin/python bench/value.py ../shared/data/banking77 --budget 100 --errors 0 --rows default --draws 3 \
        --student replay_by=random      # and replay_by=class, and replay=null
    .venv/bin/python bench/replay.py banking77 --budget 100 [--row default] [--min-new 128]

Reads the value bench's cached runs (bench/results/value/<dataset>.jsonl) and writes
bench/results/value/<dataset>-replay-<row>-<min-new>.md (per arm: the largest drop of selection macro-F1 from one
version to the next, absolute and in standard errors, and the final scores) and .png (the curves). Simulated
teacher, error 0: a measuring instrument; every label it writes is right, so a drop is forgetting or noise.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "results" / "value"


def arm_of(run: dict) -> str | None:
    """The replay arm of a cached run, from its student settings (bench/value.py --student)."""
    student = run.get("student") or {}
    if student.get("replay", 4096) is None:
        return "full retrain (replay: null)"
    return f"replay 4096 by {student.get('replay_by', 'class')}"


def steps(run: dict) -> list[tuple[float, float, float]]:
    """Per step v(i) -> v(i+1): (selection F1 change, that change over the paired bootstrap SE of the step, that
    change over the SE of one version's selection F1), with pgkd's BestChoice resampling."""
    from pgkd.evaluator.selection import BestChoice, Candidate

    labels = [str(i) for i in range(len(run["labels"]))]
    choice = BestChoice([str(g) for g in run["selection_gold"]], labels, 1.0)
    cands = [Candidate(f"v{v['version']}", v["version"], v["selection_f1"], [str(p) for p in v["selection_pred"]])
             for v in run["trajectory"]]
    out = []
    for a, b in zip(cands, cands[1:]):
        paired = choice.paired_se(a, b)
        alone = float(choice._resampled[a.key].std(ddof=1))
        change = b.macro_f1 - a.macro_f1
        out.append((change, change / paired if paired > 0 else 0.0, change / alone if alone > 0 else 0.0))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--seeds-per-class", type=int, default=10)
    p.add_argument("--row", default="default", help="the value bench's row (its teacher's steering)")
    p.add_argument("--min-new", type=int, default=128, help="examples per version (bench/value.py --student "
                   "min_new_examples=N; 128 when not given)")
    args = p.parse_args()
    runs = [json.loads(line) for line in (OUT / f"{args.dataset}.jsonl").read_text().splitlines()]
    runs = [r for r in runs if r["budget_per_class"] == args.budget and r["error_rate"] == 0 and r["row"] == args.row
            and r["seeds_per_class"] == args.seeds_per_class and "selection_gold" in r and "student" in r
            and r["student"].get("min_new_examples", 128) == args.min_new]
    arms: dict[str, list[dict]] = {}
    for run in runs:
        arms.setdefault(arm_of(run), []).append(run)
    lines = [f"### {args.dataset}: simulated teacher at error 0, {args.budget} examples per class, "
             f"{args.seeds_per_class} seeds per class, a version per {args.min_new} new examples, row {args.row}", "",
             "| replay | draws | versions | worst step: F1 change | in paired SE of the step | in SE of one version | "
             "steps below −1 SE of one version | final selection F1 | final test F1 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for arm, items in sorted(arms.items()):
        per_run = [steps(r) for r in items]
        worst = [min(s, key=lambda x: x[0]) for s in per_run]
        below = sum(sum(x[2] < -1 for x in s) for s in per_run)
        total = sum(len(s) for s in per_run)
        last = [r["trajectory"][-1] for r in items]
        lines.append(f"| {arm} | {len(items)} | {statistics.mean(len(r['trajectory']) for r in items):.0f} | "
                     f"{min(w[0] for w in worst):+.4f} | {min(w[1] for w in worst):+.1f} | "
                     f"{min(w[2] for w in worst):+.2f} | {below} of {total} | "
                     f"{mean_std([v['selection_f1'] for v in last])} | {mean_std([v['test_f1'] for v in last])} |")
    text = "\n".join(lines)
    (OUT / f"{args.dataset}-replay-{args.row}-{args.min_new}.md").write_text(text + "\n")
    plot(arms, OUT / f"{args.dataset}-replay-{args.row}-{args.min_new}.png", args)
    print(text)
    return 0


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def plot(arms: dict[str, list[dict]], path: Path, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for n, (arm, items) in enumerate(sorted(arms.items())):
        for i, run in enumerate(items):
            xs = [v["generated_seen"] for v in run["trajectory"]]
            ax.plot(xs, [v["selection_f1"] for v in run["trajectory"]], color=f"C{n}", alpha=0.8, lw=1.2,
                    label=arm if i == 0 else None)
    ax.set_xlabel("teacher examples the version trained on")
    ax.set_ylabel("selection macro-F1")
    ax.set_title(f"{args.dataset}: simulated teacher, error 0 (one line per seed draw)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
