"""Teacher speed on this machine: the raw engine against pgkd's pipeline, per engine setting, with the CPU flags.

Each setting (dtype, preload on/off, label scoring) runs in its own process with a fresh engine:
  raw       one engine call with the prompts a teacher batch sends (all of them at once, the largest batch the
            plan gives), prompt and completion tokens per second;
  pipeline  Teacher.write_batch, as the teacher actor calls it (generate + parse + filter + label), for a few
            batches: completion tokens per busy second and kept examples per busy second, generate vs label time.
A run's report.json (--run-report) adds the same pipeline figures from inside a real run, with the engine's busy
share of the wall time.

    .venv/bin/python bench/teacher_speed.py                                   # demo data, auto vs float32
    .venv/bin/python bench/teacher_speed.py --settings bfloat16:on:full,float32:on:full,bfloat16:off:full \\
        --run-report runs/<id>/report.json
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
OUT = REPO / "bench" / "results" / "teacher_speed"


def measure_one(args) -> dict:
    """In a fresh process: one engine in one setting, raw then pipeline."""
    import random

    from pgkd.config import load_config
    from pgkd.basics.dataset import load_dataset, sample_per_class
    from pgkd.cluster.cpu import cpu_info, teacher_dtype
    from pgkd.teacher.backends.base import SamplingSpec
    from pgkd.teacher.backends.vllm_engine import VLLMEngineBackend
    from pgkd.teacher.planner import plan_for
    from pgkd.teacher.teacher import Teacher

    dtype, _, scoring, _ = (args.one + ":auto").split(":")[:4]
    config = load_config(Path(args.config), [f"teacher.dtype={dtype}", f"teacher.label_scoring={scoring}"])
    data = load_dataset(config.dataset.path)
    seeds = sample_per_class(data.train, config.dataset.seeds_per_class, 0)
    started = time.time()
    engine_dtype = teacher_dtype(dtype, on_gpu=False)
    backend = VLLMEngineBackend(config.teacher.model, dtype=engine_dtype, max_model_len=config.teacher.max_model_len,
                                kv_cache_gib=config.teacher.kv_cache_gib, block_size=32, label_scoring=scoring)
    ready = time.time() - started
    teacher = Teacher(backend, data.labels, seeds, [r["text"] for r in data.validation + data.test], config.teacher,
                      "bench", config.dataset.task, seed=0)
    c = config.teacher
    plan = plan_for(c, [label.name for label in data.labels], None, 0, random.Random(0))
    prompts = [teacher.prompts.generation_prompt(task, c.demos_per_class) for task in plan for _ in range(task.count)]
    prompts = (prompts * (args.raw_prompts // max(1, len(prompts)) + 1))[:args.raw_prompts]
    spec = SamplingSpec(n=1, temperature=c.temperature, top_p=c.top_p, max_tokens=c.max_new_tokens, seed=None)
    backend.generate(prompts[:2], spec)  # warm-up: first-call costs stay out of the figures
    t0 = time.time()
    completions = backend.generate(prompts, spec)
    raw_s = time.time() - t0
    raw = {"prompts": len(prompts), "seconds": raw_s,
           "prompt_tokens": sum(x.prompt_tokens for x in completions),
           "completion_tokens": sum(x.completion_tokens for x in completions)}
    totals: dict[str, float] = {}
    for number in range(args.batches):
        _, stats = teacher.write_batch(None, number)
        for key, value in stats.as_counts().items():
            totals[key] = totals.get(key, 0) + value
    agreement = label_agreement(teacher, backend, data, args.agreement_texts) if scoring == "distinct" else None
    teacher.close()
    return {"agreement": agreement, "setting": args.one, "dtype": engine_dtype,
            "preload": os.environ.get("LD_PRELOAD", ""),
            "cpu": cpu_info().describe(), "engine_ready_s": ready, "raw": raw, "pipeline": totals}


def label_agreement(teacher, backend, data, n: int) -> dict:
    """The same validation texts labelled by full and by distinct scoring: how often the top label agrees, how far
    the calibrated probabilities move, and what each costs."""
    import random

    rows = random.Random(0).sample(data.validation, min(n, len(data.validation)))
    labeler = teacher.labeler
    sets = [labeler.candidates(row["label"], []) for row in rows]
    out = {}
    for mode in ("full", "distinct"):
        backend.label_scoring = mode
        labeler._content_free.clear()  # each mode calibrates with its own content-free scores
        started = time.time()
        out[mode] = (labeler.score([row["text"] for row in rows], sets), time.time() - started)
    pairs = [(a, b) for a, b in zip(out["full"][0], out["distinct"][0]) if a and b]
    top = lambda probs: max(probs, key=probs.get)  # noqa: E731
    gold_full = sum(top(a) == row["label"] for (a, _), row in zip(pairs, rows)) / max(1, len(pairs))
    gold_distinct = sum(top(b) == row["label"] for (_, b), row in zip(pairs, rows)) / max(1, len(pairs))
    return {"texts": len(pairs), "top_label_agreement": sum(top(a) == top(b) for a, b in pairs) / max(1, len(pairs)),
            "mean_abs_prob_change": sum(abs(a[k] - b[k]) for a, b in pairs for k in a) / max(1, sum(map(len, sets))),
            "accuracy_full": gold_full, "accuracy_distinct": gold_distinct,
            "seconds_full": out["full"][1], "seconds_distinct": out["distinct"][1]}


def run_setting(setting: str, args) -> dict:
    """A child process per setting: LD_PRELOAD must be set before the process starts."""
    from pgkd.cluster.cpu import preload_libraries
    from pgkd.cluster.placement import library_folders

    dtype, preload, scoring, bind = (setting + ":auto").split(":")[:4]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "2", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("LD_PRELOAD", None)
    if bind == "all":  # every core for the engine (vLLM's auto keeps one free for the rest of the process tree)
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{os.cpu_count() - 1}"
    if preload == "on":
        env["LD_PRELOAD"] = ":".join(preload_libraries(library_folders()))
    log = OUT / f"{setting.replace(':', '-')}.log"
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, __file__, "--one", setting, "--config", args.config,
                               "--batches", str(args.batches), "--raw-prompts", str(args.raw_prompts),
                               "--agreement-texts", str(args.agreement_texts)],
                              env=env, stdout=subprocess.PIPE, stderr=out, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"setting": setting, "error": f"exit {proc.returncode}, see {log}"}
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"setting": setting}


def row(result: dict) -> str:
    if "error" in result:
        return f"| {result['setting']} | failed: {result['error']} |"
    raw, p = result["raw"], result["pipeline"]
    raw_tps = raw["completion_tokens"] / raw["seconds"]
    busy = p.get("busy_seconds") or 1
    pipe_tps = p.get("completion_tokens", 0) / busy
    preload = ", ".join(Path(x).name for x in result["preload"].split(":") if x) or "none"
    parts = (result["setting"] + ":auto").split(":")
    return (f"| {result['dtype']} | {preload} | {parts[2]} | {parts[3]} | {result['engine_ready_s']:.0f} | "
            f"{raw['prompt_tokens'] / raw['seconds']:.0f} | {raw_tps:.1f} | "
            f"{pipe_tps:.1f} ({pipe_tps / raw_tps:.0%}) | "
            f"{p.get('generate_seconds', 0):.0f} / {p.get('label_seconds', 0):.0f} | "
            f"{p.get('kept', 0):.0f} of {p.get('generated', 0):.0f} | {p.get('kept', 0) / busy:.2f} |")


def run_report_row(path: Path) -> str:
    report = json.loads(path.read_text())
    t = report["teacher"]
    totals = t["totals"]
    busy = totals.get("busy_seconds") or 1
    share = t.get("engine_busy_share")
    return (f"| inside `pgkd run` ({path.parent.name}) | | | | {totals.get('engine_load_seconds', 0):.0f} | | | "
            f"{totals.get('completion_tokens', 0) / busy:.1f} | {totals.get('generate_seconds', 0):.0f} / "
            f"{totals.get('label_seconds', 0):.0f} | {totals.get('kept', 0):.0f} of {totals.get('generated', 0):.0f} | "
            f"{totals.get('kept', 0) / busy:.2f} (engine busy {share:.0%} of its up time) |"
            if share is not None else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(REPO / "ray_configs" / "demo.yaml"))
    p.add_argument("--settings", default="auto:on:full,auto:on:distinct,float32:on:full,auto:off:full,auto:on:full:all",
                   help="comma-separated dtype:preload(on|off):label_scoring(full|distinct)[:bind(auto|all)]")
    p.add_argument("--batches", type=int, default=3, help="pipeline batches per setting")
    p.add_argument("--raw-prompts", type=int, default=48)
    p.add_argument("--agreement-texts", type=int, default=60, help="validation texts labelled both ways")
    p.add_argument("--run-report", action="append", default=[], help="report.json of a real run, for its row")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure_one(args)), flush=True)
        return
    from pgkd.cluster.cpu import cpu_info

    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for setting in args.settings.split(","):
        print(f"measuring {setting} ...", flush=True)
        results.append(run_setting(setting, args))
        print(row(results[-1]), flush=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    lines = [f"Teacher speed, {stamp}, {cpu_info().describe()}; config {Path(args.config).name}, "
             f"{args.batches} pipeline batches per setting, raw = {args.raw_prompts} generation prompts in one call.",
             "", "| dtype | preloaded | label scoring | threads bound | engine ready (s) | raw prompt tok/s | "
             "raw completion tok/s | "
             "pipeline completion tok/s per busy s (of raw) | generate / label s | kept | kept per busy s |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [row(r) for r in results] + [r for r in map(run_report_row, map(Path, args.run_report)) if r]
    for r in results:
        a = r.get("agreement")
        if a:
            lines += ["", f"Label scoring, {a['texts']} validation texts with {r['dtype']}: distinct agrees with "
                      f"full on "
                      f"the top label for {a['top_label_agreement']:.0%} (mean probability change "
                      f"{a['mean_abs_prob_change']:.3f}); accuracy against the gold label {a['accuracy_full']:.2f} "
                      f"full vs {a['accuracy_distinct']:.2f} distinct; {a['seconds_full']:.1f} s vs "
                      f"{a['seconds_distinct']:.1f} s."]
    table = "\n".join(lines) + "\n"
    path = OUT / f"teacher_speed-{time.strftime('%Y%m%d-%H%M%S')}.md"
    path.write_text(table)
    (path.with_suffix(".json")).write_text(json.dumps(results, indent=1))
    print("\n" + table + f"\n-> {path}")


if __name__ == "__main__":
    main()
