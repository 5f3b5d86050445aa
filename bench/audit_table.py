"""The audit table: how well each teacher labels each dataset's steering texts, before a run trusts it.

    .venv/bin/python bench/audit_table.py [--configs ray_configs/ag_news.yaml,ray_configs/banking77.yaml]
        [--formats completion,chat] [--endpoint http://host:8000/v1 --served-model NAME [--api-key-env VAR]]

Each cell is `pgkd audit CONFIG` in its own process (the engine loads each time): the embedded teacher in each
prompt format, and, with --endpoint, a teacher you serve or rent (an OpenAI-compatible endpoint; its format is
`auto`: chat where it chats and is named instruct or has no /completions). Writes bench/results/audit/table.md with
the CPU it ran on, and one JSON per audit beside it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "results" / "audit"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="ray_configs/ag_news.yaml,ray_configs/banking77.yaml")
    p.add_argument("--formats", default="completion,chat", help="prompt formats for the embedded teacher")
    p.add_argument("--endpoint", help="an OpenAI-compatible base URL serving a stronger teacher")
    p.add_argument("--served-model", help="the model name at --endpoint")
    p.add_argument("--api-key-env", default=None)
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    teachers = [(f"embedded Gemma 3 270M, {fmt}", [f"teacher.prompt_format={fmt}"]) for fmt in args.formats.split(",")]
    if args.endpoint:
        teachers.append((f"{args.served_model} at {args.endpoint}", [
            "teacher.backend=openai", f"teacher.model={args.served_model}", f"teacher.base_url={args.endpoint}",
            f"teacher.api_key_env={args.api_key_env or 'null'}"]))
    rows = []
    for config in args.configs.split(","):
        for name, sets in teachers:
            rows.append(audit_row(config, name, sets))
            print(rows[-1]["line"], flush=True)
    write_table(rows)
    return 0


def audit_row(config: str, teacher: str, sets: list[str]) -> dict:
    stem = f"{Path(config).stem}-{len(list(OUT.glob(Path(config).stem + '-*.json')))}"
    out = OUT / f"{stem}.json"
    command = [str(REPO / ".venv" / "bin" / "pgkd"), "audit", config, "--json", str(out)]
    for item in sets:
        command += ["--set", item]
    started = time.time()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"config": config, "teacher": teacher, "error": proc.stdout[-500:] + proc.stderr[-500:],
                "line": f"{config} / {teacher}: failed"}
    audit = json.loads(out.read_text())
    return {"config": config, "teacher": teacher, "audit": audit, "wall_s": round(time.time() - started, 1),
            "line": f"{config} / {teacher}: accuracy {audit['accuracy']:.3f} ECE {audit['ece']:.3f}"}


def write_table(rows: list[dict]) -> None:
    from pgkd.cluster.cpu import cpu_info

    lines = [f"Machine: {cpu_info().describe()}.", "",
             "| dataset | teacher | format / generation | audit texts | accuracy | macro-F1 | ECE | seeds-only student "
             "accuracy | chosen min_confidence (precision) | pool / soft labels | KD alpha | audit s |",
             "|---|---|---|---:|---:|---:|---:|---:|---|---|---:|---:|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {Path(row['config']).stem} | {row['teacher']} | failed: {row['error'][-120:]!r} |"
                         + " |" * 9)
            continue
        a = row["audit"]
        precision = a["precision_at_threshold"] if a["min_confidence"] == a["threshold"] else a["best_precision"]
        lines.append(
            f"| {Path(row['config']).stem} | {row['teacher']} | {a['prompt_format']} / "
            f"{'structured' if a['structured'] else 'plain'} | {a['texts']} | {a['accuracy']:.3f} "
            f"| {a['macro_f1']:.3f} | {a['ece']:.3f} | {a['student_accuracy']:.3f} | {a['min_confidence']:.3f}"
            f"{f' ({precision:.0%})' if precision is not None else ''} | "
            f"{'on' if a['pool_labelling'] else 'off'} / {'on' if a['soft_labels'] else 'off'} | {a['kd_alpha']:g} "
            f"| {a['seconds']:.0f} |")
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
