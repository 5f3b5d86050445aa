"""The PGKD ablation table on a dataset folder: test accuracy and macro-F1 per row, same seeds and teacher budget.

    .venv/bin/python bench/quality.py DATASET_DIR [--config ray_configs/banking77.yaml] [--budget 6]
        [--seeds-per-class 10] [--max-validation 385] [--seeds 1] [--rows full,seeds-only,...] [--dry-run]

Each run row is `pgkd run CONFIG --set ...` in a subprocess (one at a time) with the same labelled seeds per class
(dataset.seeds_per_class, dataset.sample_seed), the same teacher budget (teacher.max_batches = --budget) and
patience high enough that the budget is spent; its runs/<id>/report.json gives the best student's test scores and
the teacher's token counts. --seeds N repeats each row with dataset.sample_seed and teacher.seed = 0..N-1 and
reports mean ± standard deviation. The teacher rows classify a capped test subset (--teacher-test) in this process
by calibrated label log-probability over all labels (bench/latency.py), zero-shot and with one seed demo per label.
A row whose keys the config rejects is skipped with the error. Finished runs (and teacher rows) are cached in
bench/results/quality/<dataset>.json by their exact command (a config under ray_configs/ by its relative path, so
the cache serves any checkout), so rows can be added later (--force reruns; --cached-only runs nothing and prints
what the cache holds for seeds 0..N-1 of each row).
Writes bench/results/quality/<dataset>.md and <dataset>.png (macro-F1 against teacher tokens) and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "results" / "quality"

# row -> (what the table calls it, --set overrides on top of the common ones)
RUN_ROWS = {
    "seeds-only": ("student on seeds only (teacher.replicas=0)", ["teacher.replicas=0", "loop.max_versions={n}"]),
    "unguided": ("unguided generation (no report, no hard negatives)",
                 ["teacher.use_report=false", "teacher.hard_negatives=false"]),
    "no-report": ("without the report", ["teacher.use_report=false"]),
    "no-hard-negatives": ("without hard negatives", ["teacher.hard_negatives=false"]),
    "full": ("full pgkd", []),
    "pool-labelling": ("full pgkd + pool labelling", ["teacher.pool_labelling=true", "dataset.pool_from_train=true"]),
    "augmentation": ("full pgkd + augmentation", ["teacher.augmentation=true"]),
    "kind-encoder": ("full pgkd, student kind encoder", ["students={encoder}"]),
    "kind-ngram": ("full pgkd, student kind ngram", ["students={ngram}"]),
    "kind-graph": ("full pgkd, student kind graph", ["students={graph}"]),
}
TEACHER_ROWS = {"teacher-zero": ("teacher alone, zero-shot", "zero"),
                "teacher-few": ("teacher alone, one seed demo per label", "few")}
ALL_ROWS = list(TEACHER_ROWS) + list(RUN_ROWS)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--config", help="base run config (default: ray_configs/<dataset>.yaml, else banking77.yaml)")
    p.add_argument("--budget", type=int, default=6, help="teacher.max_batches of every run row")
    p.add_argument("--seeds-per-class", type=int, default=10)
    p.add_argument("--max-validation", type=int, default=385)
    p.add_argument("--seeds", type=int, default=1, help="repeat rows with sample_seed / teacher.seed 0..N-1")
    p.add_argument("--rows", default=",".join(ALL_ROWS), help=f"comma-separated, from: {','.join(ALL_ROWS)}")
    p.add_argument("--teacher-test", type=int, default=64, help="test texts the teacher rows classify")
    p.add_argument("--time-budget", type=float, default=1200, help="loop.time_budget_s: a safety cap per run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more overrides for every run")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--force", action="store_true", help="rerun rows found in the cache")
    p.add_argument("--cached-only", action="store_true",
                   help="run nothing: print the table from the cached seeds 0..N-1 of each row (missing: not run)")
    args = p.parse_args()
    name = Path(args.dataset).name
    config = Path(args.config) if args.config else default_config(name)
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ALL_ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}")
    cache_path = OUT / f"{name}.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    cache = {normalize_key(k): v for k, v in cache.items()}  # keys written before they were path-independent
    results: dict[str, list[dict]] = {}
    for row in [r for r in rows if r in RUN_ROWS]:
        for seed in range(args.seeds):
            command = run_command(args, config, row, seed)
            key = cache_key(command)
            if args.dry_run:
                print(shlex.join(command))
                continue
            if args.cached_only:
                if key in cache:
                    results.setdefault(row, []).append(cache[key])
                continue
            if key not in cache or args.force:
                cache[key] = run_row(command, config, row)
                OUT.mkdir(parents=True, exist_ok=True)
                cache_path.write_text(json.dumps(cache, indent=2))
            results.setdefault(row, []).append(cache[key])
    teacher = [r for r in rows if r in TEACHER_ROWS]
    if teacher and not args.dry_run:
        results.update(teacher_rows(args, config, teacher, cache, cache_path))
    if args.dry_run:
        return 0
    text = table(args, config, rows, results)
    plot(results, OUT / f"{name}.png")
    (OUT / f"{name}.md").write_text(text + f"\n\n![macro-F1 against teacher tokens]({name}.png)\n")
    print(text)
    return 0


def default_config(name: str) -> Path:
    own = REPO / "ray_configs" / f"{name}.yaml"
    return own if own.exists() else REPO / "ray_configs" / "banking77.yaml"


def student_list(config: Path, kind: str | None) -> list[dict]:
    """The config's first student, or one of the given kind with the same data cadence."""
    first = (yaml.safe_load(config.read_text()).get("students") or [{}])[0]
    if kind is None:
        return [first]
    return [{"name": kind, "kind": kind, "min_new_examples": first.get("min_new_examples", 16)}]


def run_command(args, config: Path, row: str, seed: int) -> list[str]:
    common = [f"dataset.path={Path(args.dataset).resolve()}", f"dataset.seeds_per_class={args.seeds_per_class}",
              f"dataset.max_validation={args.max_validation}", f"dataset.sample_seed={seed}", f"teacher.seed={seed}",
              f"teacher.max_batches={args.budget}", "loop.patience=1000", "loop.max_versions=1000",
              f"loop.time_budget_s={args.time_budget:g}", f"students={json.dumps(student_list(config, None))}"]
    extra = []
    for override in RUN_ROWS[row][1]:
        key, value = override.split("=", 1)
        if value.startswith("{") and value.endswith("}") and key == "students":
            kind = value[1:-1]
            extra.append(f"students={json.dumps(student_list(config, None if kind == 'encoder' else kind))}")
        elif value == "{n}":  # seeds only: no teacher means no later version, so stop once each student is scored
            extra.append(f"{key}=1")
        else:
            extra.append(override)
    # later overrides win: drop a common one that a row sets again
    keys = {o.split("=", 1)[0] for o in extra}
    sets = [o for o in common if o.split("=", 1)[0] not in keys] + extra + args.set
    run_id = f"quality-{row}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    return ([str(REPO / ".venv" / "bin" / "pgkd"), "run", str(config), "--run-id", run_id]
            + [a for s in sets for a in ("--set", s)])


def cache_key(command: list[str]) -> str:
    """The command without its run id: the same row, seed and settings hit the cache (kind-encoder = full)."""
    at = command.index("--run-id")
    return normalize_key(shlex.join(command[1:at] + command[at + 2:]))


def normalize_key(key: str) -> str:
    """`run /any/checkout/ray_configs/X.yaml ...` -> `run ray_configs/X.yaml ...`: the same key in every checkout."""
    parts = shlex.split(key)
    if len(parts) > 1 and parts[0] == "run" and Path(parts[1]).is_absolute() and Path(parts[1]).parent.name == "ray_configs":
        parts[1] = f"ray_configs/{Path(parts[1]).name}"
    return shlex.join(parts)


def run_row(command: list[str], config: Path, row: str) -> dict:
    """Validate the overrides in-process first (a rejected key skips the row), then run and read the report."""
    from pgkd.config import load_config
    from pgkd.basics.errors import InputError

    sets = [command[i + 1] for i, a in enumerate(command) if a == "--set"]
    run_id = command[command.index("--run-id") + 1]
    try:
        resolved = load_config(config, sets)
    except InputError as exc:
        print(f"{row}: skipped, the config rejects it: {exc}", file=sys.stderr)
        return {"row": row, "skipped": str(exc)}
    print("$ " + shlex.join(command), file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    started = time.time()
    with (OUT / f"{run_id}.log").open("w") as log:
        done = subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    run_dir = (REPO / resolved.runs_dir / run_id) if not resolved.runs_dir.is_absolute() else resolved.runs_dir / run_id
    report_path = run_dir / "report.json"
    if not report_path.exists():
        return {"row": row, "skipped": f"pgkd run exited {done.returncode} without a report; see {log.name}"}
    return summarize(row, json.loads(report_path.read_text()), run_dir, time.time() - started)


def summarize(row: str, report: dict, run_dir: Path, wall: float) -> dict:
    best, totals = report.get("best_student") or {}, report["teacher"]["totals"]
    tokens = totals.get("prompt_tokens", 0) + totals.get("completion_tokens", 0)
    sources: dict[str, int] = {}
    examples = run_dir / "data" / "examples.jsonl"
    for line in examples.read_text().splitlines() if examples.exists() else []:
        source = json.loads(line)["source"]
        sources[source] = sources.get(source, 0) + 1
    generated = max(totals.get("generated", 0), 1)
    curve = [{"student": v["student"], "macro_f1": v["macro_f1"], "tokens": tokens * v["teacher_generated"] / generated}
             for v in report["versions"]]  # tokens at a version ~ its share of the run's generations
    return {"row": row, "run_id": report["run_id"], "stopped_by": report["stopped_by"]["reason"], "wall_s": wall,
            "test_accuracy": best.get("test", {}).get("accuracy"), "test_macro_f1": best.get("test", {}).get("macro_f1"),
            "val_macro_f1": best.get("validation", {}).get("macro_f1"),
            "best": f"{best.get('student', '-').removeprefix('student-')}@v{best.get('version', '-')}",
            "seeds": report["dataset"]["seeds"], "test_texts": report["dataset"]["test"], "tokens": tokens,
            "generated": totals.get("generated", 0), "kept": totals.get("kept", 0),
            "batches": totals.get("batches", 0), "sources": sources, "curve": curve}


def teacher_rows(args, config: Path, rows: list[str], cache: dict, cache_path: Path) -> dict[str, list[dict]]:
    """The teacher alone on the first --teacher-test test texts (shuffled with a fixed seed), per seed draw.

    Cached like the run rows, keyed by dataset, shots, test texts, seeds per class and seed draw."""
    task = (yaml.safe_load(config.read_text()).get("dataset") or {}).get("task", "Short texts")
    keys = {(row, seed): shlex.join(["teacher", str(Path(args.dataset).resolve()), TEACHER_ROWS[row][1], task,
                                     f"test={args.teacher_test}", f"seeds_per_class={args.seeds_per_class}",
                                     f"sample_seed={seed}"])
            for row in rows for seed in range(args.seeds)}
    todo = [rs for rs, key in keys.items() if args.force or key not in cache]
    if todo and not args.cached_only:
        from latency import seeds_for, split_sample, start_teacher, teacher_classify

        from pgkd.basics.dataset import load_dataset
        from pgkd.evaluator.metrics import macro_f1

        data = load_dataset(args.dataset)
        texts, gold = split_sample(data, "test", args.teacher_test)
        backend = start_teacher(4096)
        for row, seed in todo:
            seeds = seeds_for(data, args.seeds_per_class, seed)
            out = teacher_classify(backend, data, seeds, texts, TEACHER_ROWS[row][1], task)
            predicted = [p or "<none>" for p in out["predicted"]]
            cache[keys[row, seed]] = {
                "row": row, "test_accuracy": sum(g == p for g, p in zip(gold, predicted)) / len(gold),
                "test_macro_f1": macro_f1(gold, predicted, data.label_names), "test_texts": len(gold),
                "seeds": len(seeds), "wall_s": sum(out["seconds"]) + out["warmup_seconds"], "tokens": None,
                "run_id": f"in process, seed draw {seed}"}
            print(f"{row} s{seed}: {cache[keys[row, seed]]}", file=sys.stderr)
            OUT.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache, indent=2))
        backend.close()
    results: dict[str, list[dict]] = {}
    for (row, _), key in keys.items():
        if key in cache:
            results.setdefault(row, []).append(cache[key])
    return results


def spread(values: list[float | None], digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def table(args, config: Path, rows: list[str], results: dict[str, list[dict]]) -> str:
    lines = [(f"Dataset `{Path(args.dataset).name}`, config `{config.relative_to(REPO)}`, "
             f"{args.seeds_per_class} labelled seeds per class, validation capped at {args.max_validation}, "
             f"teacher budget teacher.max_batches={args.budget}, "
             + (f"up to {args.seeds} seed draw(s) per row (the run column lists them; mean ± std). " if args.cached_only
                else f"{args.seeds} seed draw(s) (mean ± std). ") +
             f"Teacher-alone rows: the first {args.teacher_test} shuffled test texts only; run rows: the whole test "
             "split, scored once on the run's best student (chosen on validation)."), "",
             ("| row | test accuracy | test macro-F1 | val macro-F1 | best | teacher generated / kept | "
             "teacher tokens | examples by source | test texts | wall s | run |"),
             "|---|---:|---:|---:|---|---:|---:|---|---:|---:|---|"]
    for row in rows:
        name = (RUN_ROWS.get(row) or TEACHER_ROWS[row])[0]
        got = results.get(row, [])
        skipped = [r["skipped"] for r in got if "skipped" in r]
        ok = [r for r in got if "skipped" not in r]
        if not ok:
            lines.append(f"| {name} | skipped: {skipped[0] if skipped else 'not run'} | | | | | | | | | |")
            continue
        teacher = "—" if row in TEACHER_ROWS else spread([r["generated"] for r in ok], 0) + " / " + spread(
            [r["kept"] for r in ok], 0)
        sources = "; ".join(", ".join(f"{k} {v}" for k, v in sorted(r.get("sources", {}).items())) for r in ok) or "—"
        lines.append(f"| {name} | {spread([r['test_accuracy'] for r in ok])} | {spread([r['test_macro_f1'] for r in ok])} "
                     f"| {spread([r.get('val_macro_f1') for r in ok])} | {', '.join(r.get('best', '—') for r in ok)} "
                     f"| {teacher} | {spread([r['tokens'] for r in ok], 0)} | {sources} | {ok[0]['test_texts']} "
                     f"| {spread([r['wall_s'] for r in ok], 0)} | {', '.join(r.get('run_id', 'in process') for r in ok)} |")
    return "\n".join(lines)


def plot(results: dict[str, list[dict]], path: Path) -> None:
    """Validation macro-F1 per scored version against (approximate) teacher tokens spent, one line per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row, got in results.items():
        for r in got:
            curve = r.get("curve") or []
            if curve:
                best = {}
                for point in sorted(curve, key=lambda c: c["tokens"]):  # the run's best so far, all its students
                    best[point["tokens"]] = max(point["macro_f1"], max(best.values(), default=0))
                ax.plot(list(best), list(best.values()), marker=".", label=f"{row} (s{r['run_id'].split('-s')[-1][:1]})")
                ax.scatter([r["tokens"]], [r["test_macro_f1"]], marker="*", s=80)
    ax.set_xlabel("teacher tokens (prompt + completion; per version: its share of the generations)")
    ax.set_ylabel("best validation macro-F1 so far (stars: test)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
