"""Pool scoring per core: the frozen MiniLM student scores batches as the pool scorer does (ScoreBatch: 1,024
rows, predict_proba, cache dropped), one thread, through each encoder runtime; and the top-1 each runtime gives
against torch's, with a head trained on the same seeds.

    .venv/bin/python bench/pool_scoring.py ../shared/data/banking77 --texts 3000 --repeats 3

"torch (before)" is pgkd's torch path as it was before the runtimes: batches of 64 in the pool's order. The others
batch texts of similar length together. Writes bench/results/pool_scoring.md.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pgkd.bus.messages import Example
from pgkd.cluster.cpu import cpu_info
from pgkd.student.kinds.encoder import EncoderSettings, EncoderStudent

RUNTIMES = ("torch (before)", "torch", "onnx", "onnx-int8")
BATCH_ROWS = 1024  # as pgkd/actors/pool_data.py


def seeds(rows: list[dict], per_class: int, seed: int) -> list[Example]:
    rng, by_label = random.Random(seed), {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    return [Example(text=r["text"], label=label, source="seed")
            for label in sorted(by_label) for r in rng.sample(by_label[label], per_class)]


def student_for(runtime: str, labels: list[str]) -> EncoderStudent:
    student = EncoderStudent(labels, EncoderSettings(runtime=runtime.split(" ")[0]), "cpu")
    if runtime == "torch (before)":  # no length sort: batches of 64 in the order given
        runtime_ = student.runtime
        runtime_.encode = lambda texts, batch_size=64: np.concatenate(
            [runtime_.encode_batch(texts[s:s + batch_size]) for s in range(0, len(texts), batch_size)])
    return student


def score_pool(student: EncoderStudent, texts: list[str]) -> tuple[np.ndarray, float]:
    started, probs = time.perf_counter(), []
    for start in range(0, len(texts), BATCH_ROWS):
        probs.append(student.predict_proba(texts[start:start + BATCH_ROWS]))
        student.drop_cache()
    return np.concatenate(probs), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = [json.loads(line) for line in (args.data / "train.jsonl").open()]
    pool = [json.loads(line)["text"] for line in (args.data / "test.jsonl").open()]
    pool = (pool * (args.texts // len(pool) + 1))[:args.texts]
    examples = seeds(train, args.per_class, 0)
    labels = sorted({e.label for e in examples})
    reference = student_for("torch", labels)
    reference.fit(examples, EncoderSettings(runtime="torch"))
    ref_top, _ = score_pool(reference, pool)
    rows = []
    for runtime in RUNTIMES:
        student = student_for(runtime, labels)
        student.head.load_state_dict(reference.head.state_dict())  # the same head: only the vectors differ
        score_pool(student, pool[:256])  # warm-up
        rates, probs = [], None
        for _ in range(args.repeats):
            probs, seconds = score_pool(student, pool)
            rates.append(len(pool) / seconds)
        agree = float((probs.argmax(1) == ref_top.argmax(1)).mean())
        rows.append((runtime, statistics.mean(rates), statistics.stdev(rates) if len(rates) > 1 else 0.0, agree))
        print(f"{runtime:15s} {rows[-1][1]:7.0f} ± {rows[-1][2]:4.0f} texts/s per core, top-1 as torch {agree:.4f}")
    base = rows[0][1]
    lines = [f"Machine: {cpu_info().describe()}; 1 thread; {len(pool)} texts of {args.data.name} test "
             f"(repeated to size), batches of {BATCH_ROWS} as the pool scorer takes them, {args.repeats} repeats; "
             f"head trained on {args.per_class} seeds per class in torch and shared by every runtime.", "",
             "| runtime | texts/s per core (mean ± sd) | x torch (before) | top-1 same as torch |",
             "|---|---:|---:|---:|"]
    lines += [f"| {r} | {m:.0f} ± {s:.0f} | {m / base:.1f} | {a:.2%} |" for r, m, s, a in rows]
    out = Path("bench/results/pool_scoring.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
