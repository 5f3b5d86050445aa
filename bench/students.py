"""Benchmark the student kinds on a dataset folder: train on the train split for a fixed number of epochs, then
measure inference on batches of 64 validation texts and validation macro-F1. Prints a markdown table.

    .venv/bin/python bench/students.py [DATASET] [--epochs 60] [--kinds encoder,ngram,graph] [--formats native,onnx]

Each (kind, format) runs in its own process, so peak RSS (getrusage: Python + torch + everything) is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "examples" / "demo_bank"
BATCH = 64


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset", nargs="?", default=str(DEMO))
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--kinds", default="encoder,ngram,graph", help="comma-separated; graph:gin picks a layer")
    p.add_argument("--formats", default="native", help="comma-separated: native, onnx, torchscript")
    p.add_argument("--batches", type=int, default=10, help="timed batches (median reported), after one warm-up")
    p.add_argument("--threads", type=int, default=1, help="torch threads per benchmark process")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one kind@format, print one JSON line
    args = p.parse_args()
    if args.one:
        print(json.dumps(bench_one(args)))
        return 0
    if Path(args.dataset) == DEMO and not (DEMO / "train.jsonl").exists():
        from pgkd.basics.demo_dataset import main as make_demo

        make_demo()
    rows = []
    for kind in args.kinds.split(","):
        for fmt in args.formats.split(","):
            command = [sys.executable, __file__, args.dataset, "--one", f"{kind}@{fmt}", "--epochs", str(args.epochs),
                       "--batches", str(args.batches), "--threads", str(args.threads)]
            done = subprocess.run(command, check=False, capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
            if done.returncode:
                print(f"{kind}@{fmt} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(table(rows, args))
    return 0


def bench_one(args) -> dict:
    import torch

    from pgkd.student.config import student_settings
    from pgkd.basics.dataset import load_dataset
    from pgkd.bus.messages import Example
    from pgkd.evaluator.metrics import macro_f1
    from pgkd.student.export import export_student
    from pgkd.student.registry import load_student, make_student

    torch.set_num_threads(args.threads)
    kind, fmt = args.one.split("@")
    base, _, layer = kind.partition(":")
    data = load_dataset(args.dataset)
    config = student_settings(kind=base, epochs=args.epochs, **({"layer": layer} if layer else {}))
    torch.manual_seed(config.seed)  # every process (row) trains the same model, so formats compare like for like
    student = make_student(data.label_names, config, "cpu")
    started = time.perf_counter()
    student.fit([Example(text=r["text"], label=r["label"], source="seed") for r in data.train], config)
    train_s = time.perf_counter() - started
    params, trainable = count_parameters(student)
    with tempfile.TemporaryDirectory() as tmp:
        saved = student.save(Path(tmp) / "native")
        if fmt != "native":
            student = load_student(export_student(saved, Path(tmp) / fmt, fmt))
        texts = [r["text"] for r in data.validation]
        f1 = macro_f1([r["label"] for r in data.validation], [label for label, _ in student.predict(texts)],
                      data.label_names)
        latencies = time_batches(student, texts, args.batches)
    median = statistics.median(latencies)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {"kind": kind, "format": fmt, "train_s": train_s, "params": params, "trainable": trainable,
            "ms_per_batch": median * 1000, "examples_per_s": BATCH / median, "peak_rss_mb": peak_mb, "val_f1": f1}


def time_batches(student, texts: list[str], batches: int) -> list[float]:
    pool = (texts * (BATCH * (batches + 1) // max(len(texts), 1) + 1))[:BATCH * (batches + 1)]
    cache = getattr(student, "_cache", None)  # the frozen encoder caches embeddings per text: time real encoding
    times = []
    for b in range(batches + 1):
        if cache is not None:
            cache.clear()
        started = time.perf_counter()
        student.predict(pool[b * BATCH:(b + 1) * BATCH])
        times.append(time.perf_counter() - started)
    return times[1:]  # the first batch warms up allocators and lazy imports


def count_parameters(student) -> tuple[int, int]:
    """(all, trainable) parameters of the numeric part; a frozen encoder's weights count as not trainable."""
    modules = [m for m in (getattr(student, n, None) for n in ("encoder", "head", "net")) if m is not None]
    params = [p for m in modules for p in m.parameters()]
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def table(rows: list[dict], args) -> str:
    lines = [(f"Dataset `{Path(args.dataset).name}`, {args.epochs} epochs, batches of {BATCH}, "
             f"median of {args.batches}, {args.threads} torch thread(s)."), "",
             "| kind | format | train s | params (trainable) | ms / batch | examples/s | peak RSS MB | val macro-F1 |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['format']} | {r['train_s']:.1f} | {r['params']:,} ({r['trainable']:,}) | "
                     f"{r['ms_per_batch']:.1f} | {r['examples_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} | "
                     f"{r['val_f1']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
