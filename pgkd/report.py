"""report.md and the learning-curve plot, for people."""
from __future__ import annotations

from pathlib import Path

from pgkd.basics.atomic_files import write_atomic


def plot_learning_curve(versions: list[dict], path: Path) -> bool:
    if not versions:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for student in sorted({v["student"] for v in versions}):
        rows = [v for v in versions if v["student"] == student]
        ax.plot([v["generated_seen"] for v in rows], [v["macro_f1"] for v in rows], marker="o", label=student)
    ax.set_xlabel("teacher examples the student trained on")
    ax.set_ylabel("validation macro-F1")
    ax.set_title("Learning curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_markdown(report: dict, run_dir: Path) -> Path:
    has_plot = plot_learning_curve(report["versions"], run_dir / "learning_curve.png")
    lines = [f"# pgkd run {report['run_id']}", ""]
    if report.get("simulated_teacher"):
        lines += [f"**Teacher: {report['simulated_teacher']}.** A benchmark of pgkd's loop, not of a model.", ""]
    stop = report["stopped_by"]
    lines += [f"Stopped by **{stop['reason']}** {stop.get('detail', '')} after {report['elapsed_seconds']:.0f} s.", ""]
    for n, earlier in enumerate(report.get("earlier_sessions", []), 1):
        lines += [f"Session {n} ended by {earlier['reason']} {earlier.get('detail', '')}; resumed with `pgkd resume`.", ""]
    d = report["dataset"]
    held = f" (+{d['selection']} held out to choose the best student)" if d.get("selection") else ""
    lines += [f"Dataset `{d['path']}`: {d['labels']} labels, {d['seeds']} labelled seeds, "
              f"{d['validation']} validation{held} and {d['test']} test texts.", ""]
    lines += best_section(report.get("best_student"))
    lines += audit_section(report.get("teacher_audit"))
    lines += teacher_section(report["teacher"], simulated=bool(report.get("simulated_teacher")))
    lines += sources_section(report.get("examples", {}))
    lines += pool_section(report.get("pool"))
    lines += tracking_section(report.get("tracking"))
    lines += ["## Versions", "", "| student | version | examples | from teacher | val accuracy | val macro-F1 |",
              "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {v['student']} | {v['version']} | {v['examples_seen']} | {v['generated_seen']} | "
              f"{v['accuracy']:.4f} | {v['macro_f1']:.4f} |" for v in report["versions"]]
    if has_plot:
        lines += ["", "![learning curve](learning_curve.png)"]
    path = run_dir / "report.md"
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def tracking_section(tracking: dict | None) -> list[str]:
    if not tracking:
        return []
    where = f"{tracking['backend']} run `{tracking.get('run_id')}` in experiment `{tracking['experiment']}` at " \
            f"`{tracking['uri']}`"
    if tracking["state"] != "ok":
        sent = f"What was sent before is in the {where}" if tracking.get("run_id") else \
            f"Nothing reached `{tracking['uri']}`"
        return ["## Tracking", "", f"**Tracking was {tracking['state']}**: {tracking['error']}. {sent}; this "
                f"report and the run's folder hold everything.", ""]
    model = f"; the student: `{tracking['model_uri']}`" if tracking.get("model_uri") else ""
    return ["## Tracking", "", f"Sent to the {where}{model}.", ""]


def best_section(best: dict | None) -> list[str]:
    if not best:
        return ["## Best student", "", "No student was scored.", ""]
    return ["## Best student", "",
            f"`{best['student']}` version {best['version']} ({best['examples_seen']} examples, "
            f"{best['generated_seen']} from the teacher), exported to `{best['path']}`.", "",
            "| | accuracy | macro-F1 |", "|---|---:|---:|",
            f"| validation (steering) | {best['validation']['accuracy']:.4f} | {best['validation']['macro_f1']:.4f} |",
            *([f"| selection (never seen by the teacher) | {best['selection']['accuracy']:.4f} | "
               f"{best['selection']['macro_f1']:.4f} |"] if best.get("selection") else []),
            f"| test | {best['test']['accuracy']:.4f} | {best['test']['macro_f1']:.4f} |",
            f"| test, same student on seeds only | {best['seeds_only_test']['accuracy']:.4f} | "
            f"{best['seeds_only_test']['macro_f1']:.4f} |", "",
            *([choice_line(best["choice"]), ""] if best.get("choice") else [])]


def choice_line(choice: dict) -> str:
    """Which rule chose the exported student and why, in one line."""
    rule = f" (rule: {choice['rule']})" if choice.get("rule") else ""
    return f"Chosen{rule}: {choice['reason']}."


def audit_line(audit: dict) -> str:
    """The audit in one line: the run's terminal and the report say the same."""
    student = (f"; seeds-only student {audit['student_accuracy']:.3f} / {audit['student_macro_f1']:.3f}"
               if audit.get("student_accuracy") is not None else "; no seeds-only student to compare with")
    spoken = (f" [{audit['prompt_format']} prompts, {'structured' if audit.get('structured') else 'plain'} "
              "generation]" if audit.get("prompt_format") else "")
    return (f"teacher audit on {audit['texts']} steering texts (each among {audit['candidates']} candidate labels): "
            f"accuracy {audit['accuracy']:.3f}, macro-F1 {audit['macro_f1']:.3f}, calibration error (ECE) "
            f"{audit['ece']:.3f}{student}{spoken}")


def audit_section(audit: dict | None) -> list[str]:
    if not audit:
        return []
    lines = ["## Teacher audit", "", audit_line(audit) + f" ({audit['seconds']:.0f} s).", "", "Decisions:", ""]
    lines += [f"- {decision}" for decision in audit["decisions"]]
    lines += ["", "| confidence | labels | mean confidence | accuracy |", "|---|---:|---:|---:|"]
    lines += [f"| {r['bin']} | {r['count']} | {r['confidence']:.3f} | {r['accuracy']:.3f} |"
              for r in audit["reliability"]]
    worst = sorted(audit["per_class_f1"].items(), key=lambda kv: kv[1])[:10]
    lines += ["", "Teacher F1 of its weakest classes on the audit: "
              + ", ".join(f"{label} {f1:.2f}" for label, f1 in worst) + ".", ""]
    return lines


def teacher_section(teacher: dict, simulated: bool = False) -> list[str]:
    t = teacher["totals"]
    ratio = teacher["kept_ratio"]
    pool = t.get("pool_labelled", 0)
    kept = (f"Generated {t.get('generated', 0):.0f}, kept {t.get('kept', 0) - pool:.0f}"
            + (f" ({ratio:.0%})" if ratio is not None else "")
            + (f"; labelled {pool:.0f} of {t.get('pool_offered', 0):.0f} pool texts offered" if pool else ""))
    if simulated:  # it reads labelled texts from a reservoir and sleeps as configured: no rate of it is a finding
        lines = ["## Teacher", "", f"{kept} over {t.get('batches', 0):.0f} batches. The simulated teacher takes its "
                 "texts from a labelled reservoir at the pace it is set to, so it has no tokens, cost or speed to "
                 "report; what this run measures is the loop (students, evaluator, steering, selection).", ""]
    else:
        lines = ["## Teacher", "",
                 f"{kept}; {t.get('prompt_tokens', 0):.0f} prompt and {t.get('completion_tokens', 0):.0f} completion "
                 f"tokens in {t.get('busy_seconds', 0):.0f} busy seconds over {t.get('batches', 0):.0f} batches "
                 f"({teacher['kept_per_busy_second'] or 0:.2f} kept examples per busy second; "
                 f"cost ${teacher['cost_usd']:.4f} at the configured prices).", ""]
        if teacher.get("engine_busy_share") is not None:
            lines[-1:] = [f"Engine ready after {t.get('engine_load_seconds', 0):.0f} s; then busy "
                          f"{teacher['engine_busy_share']:.0%} of the {t['wall_seconds']:.0f} s it was up "
                          f"({teacher['kept_per_wall_second']:.2f} kept examples per second of that time).", ""]
    if teacher["dropped"]:
        lines += ["| dropped because | count |", "|---|---:|"]
        lines += [f"| {reason} | {n:.0f} |" for reason, n in sorted(teacher["dropped"].items(), key=lambda kv: -kv[1])]
        lines.append("")
    return lines


def sources_section(examples: dict) -> list[str]:
    """Where the training data came from: seeds, generated, reworded seeds, labelled pool texts."""
    sources = [k for k in ("seed", "generated", "augmented", "pool") if examples.get(k)]
    if not sources:
        return []
    lines = ["## Examples by source", "", "| source | examples |", "|---|---:|"]
    lines += [f"| {k} | {examples[k]} |" for k in sources]
    if examples.get("pool_label_accuracy") is not None:
        lines += ["", f"Pool labels matching the hidden gold labels: {examples['pool_label_accuracy']:.1%}."]
    return lines + [""]


def pool_section(pool: dict | None) -> list[str]:
    """The pool scorer's work: how much of the pool it covered, how fast, and what the teachers took of it."""
    if not pool:
        return []
    files = pool.get("files") or []
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    rows = [("pool rows (lines)", f"{pool.get('pool_rows', 0):,.0f} in {pool.get('shards_total', 0):.0f} shards"),
            ("strategy", pool.get("strategy", "-")), ("scoring rounds", f"{pool.get('rounds', 0):.0f}"),
            ("shards scored", f"{pool.get('shards_done', 0):.0f}"),
            ("texts scored", f"{pool.get('texts_scored', 0):,.0f}"),
            ("last round", f"{pool.get('last_round_texts', 0):,.0f} texts in {pool.get('last_round_seconds', 0):.1f} s "
                           f"({pool.get('texts_per_second', 0):,.0f} texts/s)"),
            ("bad rows skipped", f"{pool.get('bad_rows', 0):.0f} (named in logs/pool-scorer.log)"),
            ("seed, validation, test or labelled texts left out", f"{pool.get('skipped', 0):,.0f}"),
            ("offered to the teachers", f"{pool.get('offered', 0):.0f}"),
            ("tried by a teacher (labelled set)", f"{pool.get('labelled', 0)}")]
    if pool.get("failed_rounds"):
        rows.append(("failed rounds (tried again; see logs/pool-scorer.log)", f"{pool['failed_rounds']:.0f}"))
    return (["## Unlabelled pool", "", f"Files: {shown}.", "", "| | |", "|---|---|"]
            + [f"| {name} | {value} |" for name, value in rows] + [""])
