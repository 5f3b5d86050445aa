"""Latency and cost of the student against the teacher for the same classification (PGKD paper, Table 5).

    .venv/bin/python bench/latency.py DATASET [--student runs/RUN/best_student] [--teacher-batches 1]
        [--shots few,zero] [--cpu-price-per-hour 0.10] [--gpu-price-per-hour 2.50]

Per batch of 64 texts of the split (validation by default, shuffled with a fixed seed): the student's predict
(an exported student given by --student, or one trained here on --train-per-class texts per label of train), and
the teacher's classification by calibrated label log-probability over ALL labels (teacher.labeler.SoftLabeler
with every label as a candidate, the embedded Gemma 3 270M on the vLLM CPU engine; argmax is the prediction).
Before timing, one warm-up call scores the content-free input and fills vLLM's prefix cache with the prompt's
shared part, as a long-running teacher has it. Writes bench/results/latency/<dataset>.md and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
from students import BATCH, time_batches

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--split", default="validation", choices=["validation", "test"])
    p.add_argument("--student", help="an exported student folder (default: train one here)")
    p.add_argument("--kind", default="encoder", help="student kind to train when --student is not given")
    p.add_argument("--train-per-class", type=int, default=20, help="train texts per label for that student")
    p.add_argument("--student-batches", type=int, default=10, help="timed student batches (median reported)")
    p.add_argument("--teacher-batches", type=int, default=1, help="timed teacher batches of 64 (77 labels: slow)")
    p.add_argument("--shots", default="few", help="comma-separated: few (one demo per label), zero (none)")
    p.add_argument("--task", default="Short texts", help="what the texts are, as in dataset.task of a run config")
    p.add_argument("--seeds-per-class", type=int, default=10, help="labelled train texts the demos come from")
    p.add_argument("--max-model-len", type=int, default=4096, help="the few-shot prompt names every label")
    p.add_argument("--threads", type=int, default=1, help="student torch threads (vLLM binds its own)")
    p.add_argument("--cpu-price-per-hour", type=float, default=0.10, help="USD per hour of this CPU machine")
    p.add_argument("--gpu-price-per-hour", type=float, default=2.50, help="USD per GPU hour (used on a GPU)")
    args = p.parse_args()

    from pgkd.basics.dataset import load_dataset

    data = load_dataset(args.dataset)
    texts, gold = split_sample(data, args.split, BATCH * max(args.student_batches + 1, args.teacher_batches))
    rows = [student_row(args, data, texts, gold)]
    backend = start_teacher(args.max_model_len)
    for shots in args.shots.split(","):
        n = BATCH * args.teacher_batches
        result = teacher_classify(backend, data, seeds_for(data, args.seeds_per_class, 0), texts[:n], shots,
                                  args.task)
        rows.append(teacher_row(result, gold[:n], data.label_names, shots))
    text = table(rows, args, data)
    out = REPO / "bench" / "results" / "latency"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{Path(args.dataset).name}.md").write_text(text + "\n")
    (out / f"{Path(args.dataset).name}.json").write_text(json.dumps(rows, indent=2))
    print(text)
    return 0


def split_sample(data, split: str, n: int) -> tuple[list[str], list[str]]:
    rows = list(getattr(data, split))
    random.Random(0).shuffle(rows)
    rows = (rows * (n // max(len(rows), 1) + 1))[:n]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def seeds_for(data, per_class: int, sample_seed: int) -> list[dict]:
    from pgkd.basics.dataset import dedupe_texts, sample_per_class

    return dedupe_texts(sample_per_class(data.train, per_class, sample_seed))


def student_row(args, data, texts: list[str], gold: list[str]) -> dict:
    import torch

    from pgkd.student.config import student_settings
    from pgkd.bus.messages import Example
    from pgkd.student.registry import load_student, make_student

    torch.set_num_threads(args.threads)
    if args.student:
        student, name = load_student(args.student), args.student
    else:
        config = student_settings(kind=args.kind)
        student = make_student(data.label_names, config, "cpu")
        train = seeds_for(data, args.train_per_class, 0)
        student.fit([Example(text=r["text"], label=r["label"], source="seed") for r in train], config)
        name = f"{args.kind}, trained here on {len(train)} train texts"
    times = time_batches(student, texts, args.student_batches)
    cache = getattr(student, "_cache", None)
    if cache is not None:
        cache.clear()
    predicted = [label for label, _ in student.predict(texts)]
    return {"who": f"student ({name})", "seconds": times, "batches": len(times),
            **quality(gold, predicted, data.label_names), "device": "cpu", "threads": args.threads}


def start_teacher(max_model_len: int):
    from pgkd.cluster.placement import vllm_block_size
    from pgkd.teacher.backends.vllm_engine import VLLMEngineBackend

    started = time.perf_counter()
    backend = VLLMEngineBackend(model="embedded:gemma3-270m", max_model_len=max_model_len,
                                block_size=vllm_block_size())
    print(f"teacher engine started in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return backend


def teacher_classify(backend, data, seeds: list[dict], texts: list[str], shots: str, task: str = "Short texts",
                     batch: int = BATCH) -> dict:
    """Label each text by the teacher's calibrated log-probability over every label; times each batch."""
    from pgkd.teacher.labeler import SoftLabeler
    from pgkd.teacher.prompts import PromptBuilder
    from pgkd.teacher.teacher import demos_by_label

    demos = demos_by_label(seeds, random.Random(0)) if shots == "few" else {}
    names = sorted(data.label_names)
    labeler = SoftLabeler(backend, PromptBuilder(data.labels, demos, task), names, len(names),
                          random.Random(0))
    started = time.perf_counter()
    labeler.score([data.train[0]["text"]], [names])  # warm-up: content-free calibration and the shared prompt prefix
    warmup = time.perf_counter() - started
    predicted, seconds = [], []
    for start in range(0, len(texts), batch):
        chunk = texts[start:start + batch]
        started = time.perf_counter()
        probs = labeler.score(chunk, [names] * len(chunk))
        seconds.append(time.perf_counter() - started)
        predicted += [max(p, key=p.get) if p else None for p in probs]
    return {"predicted": predicted, "seconds": seconds, "warmup_seconds": warmup, "texts": len(texts)}


def teacher_row(result: dict, gold: list[str], label_names: list[str], shots: str) -> dict:
    shot_text = "one demo per label" if shots == "few" else "zero-shot"
    return {"who": f"teacher (Gemma 3 270M, vLLM CPU, {shot_text}, all {len(label_names)} labels)",
            "seconds": result["seconds"], "batches": len(result["seconds"]), "warmup_seconds": result["warmup_seconds"],
            **quality(gold, result["predicted"], label_names), "device": "cpu", "threads": "vLLM"}


def quality(gold: list[str], predicted: list[str | None], label_names: list[str]) -> dict:
    from pgkd.evaluator.metrics import macro_f1

    predicted = [p or "<none>" for p in predicted]
    return {"accuracy": sum(g == p for g, p in zip(gold, predicted)) / len(gold),
            "macro_f1": macro_f1(gold, predicted, label_names), "texts": len(gold)}


def table(rows: list[dict], args, data) -> str:
    gpu = device_is_gpu()
    price = args.gpu_price_per_hour if gpu else args.cpu_price_per_hour
    student_ms = statistics.median(rows[0]["seconds"]) * 1000
    lines = [(f"Dataset `{Path(args.dataset).name}` ({len(data.labels)} labels), {args.split} texts in batches of "
             f"{BATCH}; {os.cpu_count()} CPU cores, "
             f"{'GPU' if gpu else 'no GPU'}; cost at ${price:.2f}/hour ({'GPU' if gpu else 'CPU'} price). "
             f"Median over the timed batches; accuracy and macro-F1 on the texts each row classified."), "",
             ("| model | batches timed | ms / batch of 64 | texts/s | × student | $ per 1,000 | accuracy | macro-F1 "
             "| texts scored |"), "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ms = statistics.median(r["seconds"]) * 1000
        per_text_s = ms / 1000 / BATCH
        cost = per_text_s * 1000 / 3600 * price
        lines.append(f"| {r['who']} | {r['batches']} | {ms:,.1f} | {BATCH / (ms / 1000):,.1f} | "
                     f"{ms / student_ms:,.0f} | {cost:.6f} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
                     f"{r['texts']} |")
    warm = [f"{r['warmup_seconds']:.1f} s" for r in rows if "warmup_seconds" in r]
    if warm:
        lines += ["", (f"Teacher warm-up call (content-free calibration + shared prompt prefix), not in the timing: "
                      f"{', '.join(warm)}.")]
    return "\n".join(lines)


def device_is_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
