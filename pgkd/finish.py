"""After the stop: score the best student on test, export it, and write the run's files."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pgkd.config import RunConfig, dump_config

from pgkd.teacher.config import teacher_kind
from pgkd.basics import storage
from pgkd.bus.archive import full_history, open_archive
from pgkd.basics.atomic_files import write_atomic
from pgkd.basics.redact import redact_urls
from pgkd.bus.client import CHECKPOINTS, CHOICES, DEAD_LETTERS, EXAMPLES, REPORTS, SELECTION, Bus
from pgkd.bus.control import BEST, BEST_CHOICE, TEACHER_AUDIT, stop_history
from pgkd.bus.messages import (SEEDS_PRODUCER, Checkpoint, ChoiceMade, EvalReport, ExampleBatch, SelectionScore, Stop,
                               TeacherAudit)
from pgkd.bus.roster import actor_names, teacher_names
from pgkd.evaluator.scoring import score
from pgkd.live_status import pool_status, teacher_totals
from pgkd.place import RunPlace
from pgkd.report import write_markdown
from pgkd.teacher.accounting import teacher_accounting

log = logging.getLogger("pgkd.driver")


def finish_run(config: RunConfig, data, inputs, bus: Bus, run_id: str, run_dir: Path, stop: Stop, elapsed: float,
               progress, place: RunPlace | None = None) -> dict:
    """The report, written in the run's folder (and published to run storage by URI with the exported student)."""
    place = place or RunPlace.of(config.runs_dir, run_id)
    launched = time.time() - elapsed  # now: scoring the best student on test below takes a while
    bus_block = bus_stats(bus)  # first: the run's own traffic, not the reads below
    reports = bus.read_all(REPORTS, EvalReport)
    held_out = {s.key: s.macro_f1 for s in bus.read_all(SELECTION, SelectionScore)}
    checkpoints = bus.read_all(CHECKPOINTS, Checkpoint)
    batches = full_history(bus, open_archive(place.shared("data")), ExampleBatch)
    write_data(run_dir / "data", batches)
    write_metrics(run_dir / "metrics.jsonl", reports)
    totals, per_teacher = teacher_totals(bus, actor_names(bus, "teacher", teacher_names(config)))
    kept_mismatch = reconcile_kept(totals, per_teacher, batches)
    best = bus.get_model(BEST, Checkpoint)
    best_block = score_best(best, reports, data, run_dir, progress, place) if best else None
    if best_block is not None:
        best_block |= selection_block(bus, best)
    report = {
        "run_id": run_id,
        "simulated_teacher": simulated_note(config),
        "config": redact_urls(dump_config(config)),
        "stopped_by": stop.model_dump(),
        "earlier_sessions": [s.model_dump() for s in stop_history(bus)],  # stops before each `pgkd resume`
        "elapsed_seconds": round(elapsed, 1),
        "started": round(launched, 3),  # wall clock when the actors were launched
        "dataset": {"path": str(config.dataset.path), "labels": len(data.labels), "seeds": len(inputs.seeds),
                    "validation": len(inputs.validation), "selection": len(inputs.selection),
                    "test": len(data.test)},
        "teacher_audit": audit.model_dump() if (audit := bus.get_model(TEACHER_AUDIT, TeacherAudit)) else None,
        "versions": [version_row(r, held_out) for r in reports],
        "choices": [c.model_dump() for c in bus.read_all(CHOICES, ChoiceMade)],  # the exported student over time
        "best_student": best_block,
        "teacher": {"totals": totals, "per_replica": per_teacher, "kept_reconciled": kept_mismatch,
                    "dropped": {k[len("dropped_"):]: v for k, v in totals.items() if k.startswith("dropped_")},
                    **teacher_accounting(totals, config.teacher)},
        "examples": {**source_counts(batches), "pool_label_accuracy": pool_label_accuracy(batches, inputs)},
        "pool": pool_block(bus, inputs),
        "checkpoints": [checkpoint_row(c) for c in checkpoints],
        "bus": bus_block,
    }
    write_report(report, run_dir, place)
    place.publish("metrics.jsonl", "data/examples.jsonl")
    progress(f"report: {place.stored('report.md') if place.remote else run_dir / 'report.md'}")
    return report


def write_report(report: dict, run_dir: Path, place: RunPlace | None = None) -> None:
    write_atomic(run_dir / "report.json", json.dumps(report, indent=2))
    write_markdown(report, run_dir)
    if place is not None:
        place.publish("report.json", "report.md", "learning_curve.png")


def pool_block(bus: Bus, inputs) -> dict | None:
    """Active learning over the pool: its files and size, the scorer's rounds, and what the teachers took."""
    status = pool_status(bus)
    if status is None:
        return None
    return status | {"files": inputs.pool_files}


def simulated_note(config: RunConfig) -> str | None:
    """Said at the top of every report a simulated teacher made: its numbers measure pgkd, not a model (the
    teacher kind words it; None for a model)."""
    return teacher_kind(config.teacher).report_note(config.teacher)


def selection_block(bus: Bus, best: Checkpoint) -> dict:
    """The best version's score on the selection texts and why it was chosen (absent without selection texts)."""
    scores = [s for s in bus.read_all(SELECTION, SelectionScore) if s.key == best.key]
    if not scores:
        return {}
    why = bus.get_fields(BEST_CHOICE)
    return {"selection": {"accuracy": scores[-1].accuracy, "macro_f1": scores[-1].macro_f1},
            "choice": {"reason": why.get("reason", ""), "rule": why.get("rule", ""),
                       "gain_over_seeds_only": float(why.get("gain_over_seeds_only", 0)),
                       "margin": float(why.get("margin", 0))}}


def score_best(best: Checkpoint, reports: list[EvalReport], data, run_dir: Path, progress,
               place: RunPlace | None = None) -> dict:
    """Test scores of the best student and of the same student's seeds-only version, and the export."""
    from pgkd.student.commit import commit_copy
    from pgkd.student.registry import load_student

    texts, gold = [r["text"] for r in data.test], [r["label"] for r in data.test]
    names = data.label_names
    student = load_student(best.path)
    test = score(student, texts, gold, names, 0)
    export = run_dir / "best_student"
    source = storage.fetch_folder(best.path) if storage.is_uri(best.path) else best.path
    commit_copy(source, export)  # checked against its manifest, then replaced whole
    if place is not None and place.remote:
        export = place.publish_folder("best_student")
    validation = next(r for r in reports if r.student == best.student and r.version == best.version)
    block = {"student": best.student, "version": best.version, "path": str(export),
             "examples_seen": best.examples_seen, "generated_seen": best.generated_seen,
             "validation": {"accuracy": validation.accuracy, "macro_f1": validation.macro_f1},
             "test": {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"]},
             "test_per_class_f1": test["per_class_f1"]}
    seeds_only = storage.join(storage.parent(best.path), "v0000")
    if best.version > 0 and storage.exists(seeds_only):
        baseline = load_student(seeds_only)
        baseline.share_cache(student)
        base = score(baseline, texts, gold, names, 0)
        block["seeds_only_test"] = {"accuracy": base["accuracy"], "macro_f1": base["macro_f1"]}
    else:
        block["seeds_only_test"] = block["test"]
    progress(f"best student {best.student}@v{best.version}: validation macro-F1 {validation.macro_f1:.4f}, "
             f"test macro-F1 {test['macro_f1']:.4f} accuracy {test['accuracy']:.4f} "
             f"(seeds only: test macro-F1 {block['seeds_only_test']['macro_f1']:.4f}); exported to {export}")
    return block


def reconcile_kept(totals: dict, per_teacher: dict[str, dict], batches: list[ExampleBatch]) -> dict | None:
    """Each teacher's kept count as the archive has it (the examples students trained on): a teacher killed
    between publishing a batch and adding its counts leaves the counter short, so the archive's count is the one
    reported. Returns the counters that disagreed ({teacher: {"counted", "archived"}}), None when all agreed."""
    archived: dict[str, int] = {}
    for batch in batches:
        if batch.producer != SEEDS_PRODUCER:
            archived[batch.producer] = archived.get(batch.producer, 0) + len(batch.examples)
    differ = {}
    for name in set(per_teacher) | set(archived):
        counted, actual = per_teacher.setdefault(name, {}).get("kept", 0.0), archived.get(name, 0)
        if counted != actual:
            differ[name] = {"counted": counted, "archived": actual}
            log.warning("%s counted %g kept examples, the archive holds %d: reporting the archive's", name,
                        counted, actual)
        per_teacher[name]["kept"] = actual
    totals["kept"] = sum(archived.values())
    return differ or None


def source_counts(batches: list[ExampleBatch]) -> dict[str, int]:
    """Examples on the bus by source, and `teacher_total`: everything the teacher added (generated, reworded
    seeds, labelled pool texts)."""
    counts = {source: 0 for source in ("seed", "generated", "augmented", "pool")}
    for example in (e for b in batches for e in b.examples):
        counts[example.source] += 1
    return counts | {"teacher_total": counts["generated"] + counts["augmented"] + counts["pool"]}


def pool_label_accuracy(batches: list[ExampleBatch], inputs) -> float | None:
    """How often the teacher's pool labels match the hidden ones (pool_from_train only; None otherwise)."""
    gold = {text: label for text, label in zip(inputs.pool, inputs.pool_gold) if label}
    judged = [e.label == gold[e.text] for b in batches for e in b.examples if e.source == "pool" and e.text in gold]
    return round(sum(judged) / len(judged), 4) if judged else None


def version_row(report: EvalReport, held_out: dict[str, float] | None = None) -> dict:
    """A scored version: macro_f1 on the steering texts, selection_macro_f1 on the held-out ones (where any)."""
    return {"student": report.student, "version": report.version, "examples_seen": report.examples_seen,
            "generated_seen": report.generated_seen, "teacher_generated": report.teacher_generated,
            "accuracy": report.accuracy, "macro_f1": report.macro_f1, "eval_seconds": round(report.eval_seconds, 2),
            "created": report.created, "selection_macro_f1": (held_out or {}).get(report.key)}


def checkpoint_row(checkpoint: Checkpoint) -> dict:
    return {"student": checkpoint.student, "version": checkpoint.version, "train_seconds": checkpoint.train_seconds,
            "epochs": checkpoint.epochs, "examples_seen": checkpoint.examples_seen, "created": checkpoint.created}


def bus_stats(bus: Bus) -> dict:
    """Redis INFO counters (server-wide: the whole run on the embedded server, everyone's traffic on a shared one)
    and the run's stream lengths, read while the server is still up."""
    info = bus.call(bus.client.info)
    block = {k: info.get(k) for k in ("total_commands_processed", "total_net_input_bytes", "total_net_output_bytes",
                                      "used_memory", "uptime_in_seconds")}
    block["streams"] = {s: bus.stream_length(s) for s in (EXAMPLES, CHECKPOINTS, REPORTS, SELECTION, DEAD_LETTERS)}
    return block


def write_data(folder: Path, batches: list[ExampleBatch]) -> None:
    """Every example with its provenance, one JSON line each."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "examples.jsonl").open("w") as out:
        for batch in batches:
            for example in batch.examples:
                row = example.model_dump() | {"producer": batch.producer, "batch": batch.batch}
                out.write(json.dumps(row) + "\n")


def write_metrics(path: Path, reports: list[EvalReport]) -> None:
    with path.open("w") as out:
        for report in reports:
            row = report.model_dump(exclude={"hard_negatives"})
            out.write(json.dumps(row) + "\n")
