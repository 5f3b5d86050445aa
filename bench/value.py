"""The value table: does pgkd's loop pay, measured with teachers of known quality (the simulated teacher).

    .venv/bin/python bench/value.py ../shared/data/banking77 [--draws 5] [--seeds-per-class 10] [--budget 30]
        [--errors 0,0.1,0.3] [--rows unguided,steered,steered+hn,pool-margin,pool-entropy,pool-random,pool-diverse_margin]
        [--max-validation 770] [--workers 2]

Every run is pgkd's loop in this process, one step at a time, with the roles pgkd's actors run: the simulated
teacher (`teacher/backends/simulated.py`) writes a batch steered by the newest report, the frozen-MiniLM student
(`student/trainer.py`, the same config and early stopping) trains a version on the new examples, the evaluator
(`evaluator/scoring.py`) scores it on the steering texts for the teacher's next plan and on the held-out selection
texts, and `evaluator/selection.py` picks the exported version. Only Ray, Redis and the asynchrony are left out:
this measures the design (planner, steering, selection, pool strategies), not the scheduling. Per seed draw
(dataset sample seed, teacher and student seeds) every row starts from the same seeds, validation split and v0.
Budget: `--budget` teacher examples per class (written, or pool texts labelled), the same for every row.
Embeddings of every text are computed once with MiniLM and cached under bench/results/value/; each finished run
is cached in bench/results/value/<dataset>.jsonl by its settings, so the table can grow row by row.
Writes bench/results/value/<dataset>-<N>seeds.md (the table, paired comparisons) and -budget.png.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "results" / "value"

ROWS = {  # row -> (what the table calls it, teacher settings, all explicit: the cache key holds them)
    "unguided": ("unguided: round-robin classes, random texts", {"use_report": False, "hard_negatives": False}),
    "steered": ("steered: weak classes, boundary cases (the design before 2026-11-30)",
                {"use_report": True, "hard_negatives": False, "steer_share": 1.0, "boundary_share": 1.0}),
    "steered+hn": ("steered + hard negatives (the design before 2026-11-30)",
                   {"use_report": True, "hard_negatives": True, "steer_share": 1.0, "boundary_share": 1.0}),
    "steered-typical": ("steered classes, typical texts",
                        {"use_report": True, "hard_negatives": False, "steer_share": 1.0, "boundary_share": 0.0}),
    "default": ("pgkd's default: half the classes round-robin, half steered, typical texts",
                {"use_report": True, "hard_negatives": True, "steer_share": 0.5, "boundary_share": 0.0}),
    "half-steered-mix": ("half round-robin, half steered, half boundary cases",
                         {"use_report": True, "hard_negatives": False, "steer_share": 0.5, "boundary_share": 0.5}),
    "even-boundary": ("every class alike (power 0), boundary cases",
                      {"use_report": True, "hard_negatives": False, "steer_share": 1.0, "boundary_share": 1.0,
                       "steer_power": 0.0}),
    "steered-conf": ("steered by confidence, typical texts",
                     {"use_report": True, "steer_share": 1.0, "boundary_share": 0.0, "steer_by": "confidence"}),
    "pool-margin": ("pool labelling, student margin", {"pool": "margin"}),
    "pool-entropy": ("pool labelling, student entropy", {"pool": "entropy"}),
    "pool-random": ("pool labelling, random pool texts", {"pool": "random"}),
    "pool-diverse_margin": ("pool labelling, smallest margins spread over k-means clusters",
                            {"pool": "diverse_margin"}),
    "pool-margin-audit": ("pool labelling, student margin, min_confidence from a simulated audit (target 0.9)",
                          {"pool": "margin", "threshold": "audit"}),
}
STUDENT = "student-minilm-0"  # the one student of every run
CURVE = (1, 3, 10, 30)  # teacher examples per class at which the budget curve reads the chosen student
CURVE_ROWS = ("unguided", "steered", "default")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dataset")
    p.add_argument("--draws", type=int, default=5)
    p.add_argument("--seeds-per-class", type=int, default=10)
    p.add_argument("--budget", type=int, default=30, help="teacher examples per class")
    p.add_argument("--errors", default="0,0.1,0.3")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--max-validation", type=int, default=770, help="validation texts kept (stratified)")
    p.add_argument("--classes-per-batch", type=int, default=16)
    p.add_argument("--examples-per-class", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--student", action="append", default=[], metavar="KEY=VALUE",
                   help="student setting for every run, e.g. class_weighting=balanced (part of the cache key)")
    p.add_argument("--steer-on", choices=["steering", "test"], default="steering",
                   help="test: a diagnosis only, the planner reads per-class F1 on the test set (an oracle signal "
                        "free of the steering set's noise); never a result")
    p.add_argument("--table-only", action="store_true", help="write the table from the cache; run nothing")
    args = p.parse_args()
    from pgkd.basics.dataset import load_dataset

    data = load_dataset(args.dataset)
    name = Path(args.dataset).resolve().name
    OUT.mkdir(parents=True, exist_ok=True)
    jobs = [(row, draw, float(e)) for e in args.errors.split(",") for row in args.rows.split(",")
            for draw in range(args.draws)]
    cache = OUT / f"{name}.jsonl"
    done = {r["key"]: r for r in read_jsonl(cache)}
    todo = [job for job in jobs if run_key(name, args, *job) not in done]
    if todo and not args.table_only:
        cache_embeddings(data, name)
        print(f"{len(todo)} runs to do ({len(jobs) - len(todo)} cached), {args.workers} at a time", flush=True)
        run_all(todo, args, name, cache)
        done = {r["key"]: r for r in read_jsonl(cache)}
    results = [done[run_key(name, args, *job)] for job in jobs if run_key(name, args, *job) in done]
    table = write_table(results, args, name, data)
    print(table)
    return 0


def run_key(name: str, args, row: str, draw: int, error: float) -> str:
    settings = [name, row, ROWS[row][1], draw, error, args.seeds_per_class, args.budget, args.max_validation,
                args.classes_per_batch, args.examples_per_class, student_config(args, draw).model_dump()] + (
                   [] if args.steer_on == "steering" else [f"steer_on={args.steer_on}"])
    return hashlib.sha1(json.dumps(settings).encode()).hexdigest()[:16]


def student_config(args, draw: int):
    """The student of every run: pgkd's defaults (frozen MiniLM), a version per teacher batch, --student changes."""
    import yaml

    from pgkd.student.config import student_settings

    extra = {key: yaml.safe_load(value) for key, _, value in (item.partition("=") for item in args.student)}
    defaults = {"min_new_examples": args.classes_per_batch * args.examples_per_class, "seed": draw}
    return student_settings(**(defaults | extra))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


# ---- embeddings: every text of the dataset once, with the student's frozen encoder
def embedding_file(name: str) -> Path:
    return OUT / f"embeddings-{name}.npz"


def cache_embeddings(data, name: str) -> None:
    path = embedding_file(name)
    texts = sorted({row["text"] for split in (data.train, data.validation, data.test) for row in split})
    if path.is_file() and len(np.load(path, allow_pickle=False)["texts"]) == len(texts):
        return
    import torch

    from pgkd.student.embedder import text_embedder

    torch.set_num_threads(2)
    started = time.time()
    embed = text_embedder("embedded:all-MiniLM-L6-v2", torch.get_default_device())
    vectors = np.concatenate([embed(texts[i:i + 256]) for i in range(0, len(texts), 256)])
    np.savez(path, texts=np.array(texts), vectors=vectors.astype(np.float32))
    print(f"embedded {len(texts)} texts in {time.time() - started:.0f} s -> {path}", flush=True)


def load_embeddings(name: str) -> dict[str, np.ndarray]:
    stored = np.load(embedding_file(name), allow_pickle=False)
    return dict(zip(stored["texts"].tolist(), stored["vectors"]))


# ---- the runs
def run_all(todo: list[tuple], args, name: str, cache: Path) -> None:
    from concurrent.futures import ProcessPoolExecutor

    started = time.time()
    with ProcessPoolExecutor(args.workers) as pool, cache.open("a") as out:
        futures = {pool.submit(run_one, args.dataset, name, vars(args), *job): job for job in todo}
        for n, future in enumerate(futures, 1):
            result = future.result()
            out.write(json.dumps(result) + "\n")
            out.flush()
            print(f"[{time.time() - started:6.0f}s] {n}/{len(todo)} {result['row']} draw {result['draw']} "
                  f"error {result['error_rate']}: seeds-only {result['seeds_only_test']:.4f} -> chosen "
                  f"{result['chosen_test']:.4f} ({result['chosen']}, {result['seconds']:.0f} s)", flush=True)


def run_one(dataset: str, name: str, settings: dict, row: str, draw: int, error: float) -> dict:
    import torch

    from pgkd.teacher.config import teacher_settings
    from pgkd.basics.dataset import dedupe_texts, load_dataset, rows_not_taken, sample_per_class, split_per_class
    from pgkd.bus.messages import Example
    from pgkd.student.registry import make_student
    from pgkd.student.trainer import StudentTrainer, seed_everything
    from pgkd.teacher.backends.simulated import SimulatedTeacher

    torch.set_num_threads(1)
    started = time.time()
    args = argparse.Namespace(**settings)
    data = load_dataset(dataset)
    labels = data.label_names
    vectors = load_embeddings(name)
    seeds = dedupe_texts(sample_per_class(data.train, args.seeds_per_class, draw))
    reservoir = rows_not_taken(data.train, [r["text"] for r in seeds + data.validation + data.test])
    validation = sample_per_class(data.validation, max(1, args.max_validation // len(labels)), draw)
    steering, selection = split_per_class(validation, 0.5, draw)
    row_settings = dict(ROWS[row][1])
    strategy = row_settings.pop("pool", None)
    threshold = row_settings.pop("threshold", None)
    teacher_config = teacher_settings(backend="simulated", classes_per_batch=args.classes_per_batch,
                                      examples_per_class=args.examples_per_class, generate=strategy is None,
                                      min_confidence=0.0 if strategy else 0.8, seed=draw, error_rate=error,
                                      **row_settings)
    if threshold == "audit":  # as a run would: 5 steering texts per class, the lowest confidence reaching 0.9
        teacher_config.min_confidence = audited_threshold(steering, labels, error, draw)
    teacher = SimulatedTeacher(reservoir, lambda texts: np.stack([vectors[t] for t in texts]), labels,
                               teacher_config, "teacher-0", seed=draw)
    seed_everything(draw)
    student_settings = student_config(args, draw)
    student = make_student(labels, student_settings, torch.get_default_device())
    student._cache = {t: torch.from_numpy(v) for t, v in vectors.items()}  # the frozen encoder, precomputed
    scorer = Scorer(student, labels, data.test if args.steer_on == "test" else steering, selection, data.test)
    with tempfile.TemporaryDirectory() as folder:
        trainer = StudentTrainer(student, student_settings, Path(folder), steering)
        trainer.add([Example(text=r["text"], label=r["label"], source="seed") for r in seeds])
        versions = [scorer.version(trainer.train_version())]
        budget, written, batch = args.budget * len(labels), 0, 0
        asked = right = 0  # pool texts offered to the teacher; its kept pool labels that were right
        pool_texts = [r["text"] for r in reservoir]
        while written < budget and not teacher.done:
            offered = scorer.pool_pick(pool_texts, teacher, strategy, min(teacher_config.classes_per_batch *
                                       teacher_config.examples_per_class, budget - written), draw * 1000 + batch)
            if strategy and not offered:
                break
            examples, stats = teacher.write_batch(versions[-1]["report"], batch, offered)
            examples = examples[:budget - written]
            asked += stats.pool_offered
            right += sum(e.label == teacher.gold[teacher.row_of[e.text]] for e in examples if e.source == "pool")
            written, batch = written + len(examples), batch + 1
            trainer.add(examples)
            if trainer.ready(flush=written >= budget):
                versions.append(scorer.version(trainer.train_version()))
        if trainer.ready(flush=True):
            versions.append(scorer.version(trainer.train_version()))
    result = summarize(name, args, row, draw, error, versions, scorer, len(labels), time.time() - started, written)
    if strategy:
        result |= {"min_confidence": teacher_config.min_confidence, "pool_offered": asked,
                   "pool_label_precision": round(right / written, 4) if written else None}
    return result


def audited_threshold(steering: list[dict], labels: list[str], error: float, draw: int) -> float:
    """The min_confidence a run's audit would decide with an LLM teacher's default audit settings."""
    from pgkd.teacher.audit import audit_sample, decide
    from pgkd.teacher.backends.simulated import simulated_audit
    from pgkd.teacher.config import teacher_settings

    policy = teacher_settings(min_confidence=None)
    rows = audit_sample(steering, 5, 400, draw)
    audit = simulated_audit(rows, labels, error, policy.target_precision, draw)
    return decide(audit, policy).min_confidence


class Scorer:
    """Scores each version on steering (the teacher's report), selection (the choice) and test (the table)."""

    def __init__(self, student, labels, steering, selection, test):
        self.student, self.labels = student, labels
        self.steering, self.selection, self.test = steering, selection, test
        self.scored = []  # (teacher examples seen, steering report, selection score) per version: what the judge reads

    def version(self, result) -> dict:
        from pgkd.bus.messages import EvalReport, SelectionScore
        from pgkd.evaluator.metrics import macro_f1
        from pgkd.evaluator.scoring import score

        steer = score(self.student, [r["text"] for r in self.steering], [r["label"] for r in self.steering],
                      self.labels, 50)
        report = EvalReport(student=STUDENT, version=result.version, examples_seen=result.examples_seen,
                            generated_seen=result.generated_seen, teacher_generated=result.generated_seen,
                            **{k: v for k, v in steer.items() if k in EvalReport.model_fields})
        gold = [r["label"] for r in self.selection]
        chosen = self.student.predict_proba([r["text"] for r in self.selection]).argmax(1)
        predictions = [self.labels[i] for i in chosen]
        selected = SelectionScore(student=STUDENT, version=result.version, accuracy=0.0, predictions=predictions,
                                  macro_f1=macro_f1(gold, predictions, self.labels),
                                  steering_predictions=steer["predictions"])
        self.scored.append((result.generated_seen, report, selected))
        test_pred = self.student.predict_proba([r["text"] for r in self.test]).argmax(1)
        test = macro_f1([r["label"] for r in self.test], [self.labels[i] for i in test_pred], self.labels)
        index = {label: i for i, label in enumerate(self.labels)}
        return {"version": result.version, "generated_seen": result.generated_seen, "report": report,
                "steering_f1": steer["macro_f1"], "selection_f1": selected.macro_f1, "test_f1": test,
                "train_seconds": round(result.train_seconds, 3),
                # label indices, so bench/selection_rules.py can replay any export rule on this run
                "steering_pred": [index[p] for p in steer["predictions"]], "selection_pred": chosen.tolist()}

    def pool_pick(self, pool_texts, teacher, strategy, k, seed):
        """The pool texts the current student would offer (unused ones only), as the teacher receives them."""
        if not strategy or k <= 0:
            return []
        from pgkd.student.active import most_uncertain
        from pgkd.teacher.teacher import PoolText

        used = {teacher.texts[i] for i in teacher.used}
        skip = {i for i, t in enumerate(pool_texts) if t in used}
        probs = self.student.predict_proba(pool_texts)
        picked = most_uncertain(probs, self.labels, k, strategy, skip, seed)
        return [PoolText(pool_texts[i], top) for i, _, top in picked]

    def choose(self, max_generated: int | None = None):
        """pgkd's export rule with its defaults (evaluator/judge.py, loop.selection_*), on all of validation."""
        from pgkd.evaluator.config import LoopConfig
        from pgkd.evaluator.judge import Judge

        judge = Judge(LoopConfig(), self.labels, [STUDENT], [r["label"] for r in self.selection],
                      [r["label"] for r in self.steering])
        for generated, report, selected in self.scored:
            if max_generated is None or generated <= max_generated:
                judge.record(report, selected)
        return judge.best()


def summarize(name, args, row, draw, error, versions, scorer, n_labels, seconds, written) -> dict:
    by_key = {f"{STUDENT}@v{v['version']}": v for v in versions}
    decided = scorer.choose()
    curve = {}
    for per_class in CURVE:
        if per_class <= args.budget:
            picked = scorer.choose(per_class * n_labels)
            curve[str(per_class)] = by_key[picked.best.key]["test_f1"]
    steering_best = max(versions, key=lambda v: (v["steering_f1"], -v["version"]))
    return {"key": run_key(name, args, row, draw, error), "dataset": name, "row": row, "draw": draw,
            "error_rate": error, "budget_per_class": args.budget, "seeds_per_class": args.seeds_per_class,
            "written": written, "versions": len(versions), "seconds": round(seconds, 1),
            "seeds_only_test": versions[0]["test_f1"], "chosen": decided.best.key,
            "chosen_test": by_key[decided.best.key]["test_f1"], "choice_reason": decided.reason,
            "choice_rule": "newest version, all validation, z 0.75 (pgkd's default since issue 27)",
            "last_test": versions[-1]["test_f1"], "best_by_steering_test": steering_best["test_f1"],
            "oracle_test": max(v["test_f1"] for v in versions), "curve": curve,
            "trajectory": [{k: v[k] for k in ("version", "generated_seen", "steering_f1", "selection_f1", "test_f1",
                                              "steering_pred", "selection_pred")} for v in versions],
            "student": {k: v for k, v in student_config(args, draw).model_dump().items()
                        if k.startswith("replay") or k == "min_new_examples"},
            "last_train_seconds": versions[-1]["train_seconds"],
            "labels": scorer.labels, "steering_gold": gold_indices(scorer.steering, scorer.labels),
            "selection_gold": gold_indices(scorer.selection, scorer.labels)}


def gold_indices(rows: list[dict], labels: list[str]) -> list[int]:
    index = {label: i for i, label in enumerate(labels)}
    return [index[r["label"]] for r in rows]


# ---- the table
def paired(a: list[float], b: list[float]) -> str:
    """mean difference a - b, its 95% t-interval and the paired t-test and Wilcoxon p-values."""
    from scipy import stats

    d = np.array(a) - np.array(b)
    if len(d) < 2:
        return f"{d.mean():+.4f} (one draw)"
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    t_p = stats.ttest_rel(a, b).pvalue if d.std() > 0 else 1.0
    w_p = stats.wilcoxon(a, b).pvalue if np.any(d != 0) else 1.0
    return f"{d.mean():+.4f} [{d.mean() - half:+.4f}, {d.mean() + half:+.4f}] p={t_p:.3f} (W {w_p:.3f})"


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.4f}" if values else "-"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def write_table(results: list[dict], args, name: str, data) -> str:
    draws = sorted({r["draw"] for r in results})
    seeds_only = {r["draw"]: r["seeds_only_test"] for r in results}
    student = f"; student {', '.join(args.student)}" if args.student else ""
    student += "; DIAGNOSIS: the planner steered by test-set F1 (an oracle)" if args.steer_on == "test" else ""
    lines = [f"### {name}: {args.seeds_per_class} seeds per class, {args.budget} teacher examples per class "
             f"({args.budget * len(data.labels)} in all), {len(draws)} seed draws{student}", "",
             "Test macro-F1 of the exported student (chosen on the selection texts), mean ± std over draws; "
             "differences paired over draws: mean [95% interval] paired-t p (Wilcoxon p).", "",
             "| row | error rate | test macro-F1 | vs seeds only | vs unguided (same error) | last version | "
             "best by steering |", "|---|---:|---:|---|---|---:|---:|",
             f"| seeds only | - | {mean_std([seeds_only[d] for d in draws])} | | | | |"]
    for error in sorted({r["error_rate"] for r in results}):
        unguided = {r["draw"]: r["chosen_test"] for r in results if r["row"] == "unguided" and r["error_rate"] == error}
        for row in ROWS:
            runs = sorted((r for r in results if r["row"] == row and r["error_rate"] == error), key=lambda r: r["draw"])
            if not runs:
                continue
            chosen = [r["chosen_test"] for r in runs]
            base = [seeds_only[r["draw"]] for r in runs]
            against = [r for r in runs if r["draw"] in unguided]
            vs_unguided = "" if row == "unguided" or not against else paired(
                [r["chosen_test"] for r in against], [unguided[r["draw"]] for r in against])
            lines.append(f"| {ROWS[row][0]} | {error:g} | {mean_std(chosen)} | {paired(chosen, base)} | {vs_unguided} "
                         f"| {mean_std([r['last_test'] for r in runs])} | "
                         f"{mean_std([r['best_by_steering_test'] for r in runs])} |")
    lines += ["", *curve_lines(results), ""]
    suffix = "-" + "-".join(v.replace("=", "_") for v in sorted(args.student)) if args.student else ""
    suffix += "-oracle" if args.steer_on == "test" else ""
    plot_curve(results, OUT / f"{name}-{args.seeds_per_class}seeds{suffix}-budget.png", name)
    text = "\n".join(lines)
    suffix = "-" + "-".join(v.replace("=", "_") for v in sorted(args.student)) if args.student else ""
    suffix += "-oracle" if args.steer_on == "test" else ""
    (OUT / f"{name}-{args.seeds_per_class}seeds{suffix}.md").write_text(text + "\n")
    return text


def curve_lines(results: list[dict]) -> list[str]:
    rows = [r for r in results if r["error_rate"] == 0 and r["row"] in CURVE_ROWS]
    budgets = sorted({int(b) for r in rows for b in r["curve"]})
    if not rows:
        return []
    lines = ["Budget curve at error 0 (test macro-F1 of the student chosen among versions within the budget):", "",
             "| row | " + " | ".join(f"{b}/class" for b in budgets) + " |", "|---|" + "---:|" * len(budgets)]
    for row in CURVE_ROWS:
        runs = [r for r in rows if r["row"] == row]
        if runs:
            lines.append(f"| {row} | " + " | ".join(mean_std([r["curve"][str(b)] for r in runs]) for b in budgets)
                         + " |")
    return lines


def plot_curve(results: list[dict], path: Path, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for row in CURVE_ROWS:
        runs = [r for r in results if r["row"] == row and r["error_rate"] == 0]
        if not runs:
            continue
        budgets = sorted(int(b) for b in runs[0]["curve"])
        means = [statistics.mean(float(r["curve"][str(b)]) for r in runs) for b in budgets]
        ax.plot(budgets, means, marker="o", label=row)
    seeds = [r["seeds_only_test"] for r in results]
    if seeds:
        ax.axhline(statistics.mean(seeds), color="grey", linestyle="--", label="seeds only")
    ax.set_xscale("log")
    ax.set_xlabel("teacher examples per class")
    ax.set_ylabel("test macro-F1 (chosen student)")
    ax.set_title(f"{name}: simulated teacher, error 0")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
