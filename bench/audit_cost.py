"""What the teacher audit costs as the label count grows, with its budget (teacher.audit_budget_s): `pgkd audit`
with the embedded teacher on the demo set (6 labels), banking77 (77) and a 154-label set made from banking77 by
splitting each intent in two by text order ("<intent>~a", "<intent>~b": labels with no meaning between the halves,
but prompts and candidate sets as long as a 150-intent task's, which is what the cost depends on).

    .venv/bin/python bench/audit_cost.py ../shared/data/banking77 [--budget-s 60] [--sets demo,banking77,split154]

Writes bench/results/audit_cost/audit_cost.md (+ each audit's JSON) and prints the table; engine load time is
outside the audit and reported beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "audit_cost"


def split_dataset(source: Path, target: Path) -> Path:
    """Each label of `source` becomes two, the texts of each split alternately between them."""
    target.mkdir(parents=True, exist_ok=True)
    labels = json.loads((source / "labels.json").read_text())
    names = [label["name"] if isinstance(label, dict) else label for label in labels]
    (target / "labels.json").write_text(json.dumps([f"{n}~{half}" for n in names for half in "ab"]))
    for split in ("train", "validation", "test"):
        seen: dict[str, int] = {}
        with (target / f"{split}.jsonl").open("w") as out:
            for line in (source / f"{split}.jsonl").open():
                row = json.loads(line)
                half = "ab"[seen.get(row["label"], 0) % 2]
                seen[row["label"]] = seen.get(row["label"], 0) + 1
                out.write(json.dumps({"text": row["text"], "label": f"{row['label']}~{half}"}) + "\n")
    return target


def audit(name: str, data: Path, budget: float | None, max_validation: int, per_class: int | None) -> dict:
    teacher = ({"audit_budget_s": budget} if budget else {}) | ({"audit_per_class": per_class} if per_class else {})
    dataset = {"path": str(data.resolve()), "task": "Customer messages to a bank", "seeds_per_class": 5,
               "max_validation": max_validation}
    if per_class:  # the split set: most of validation steers, so each of 154 labels has its audit texts
        dataset["selection_share"] = 0.1
    config = {"name": f"audit-{name}", "dataset": dataset,
              "teacher": teacher, "loop": {"time_budget_s": 900}}  # the run: a 60 s budget
    OUT.mkdir(parents=True, exist_ok=True)
    path, result = OUT / f"{name}.yaml", OUT / f"{name}.json"
    path.write_text(yaml.safe_dump(config))
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    started = time.time()
    with (OUT / f"{name}.log").open("w") as log:
        subprocess.run([str(REPO / ".venv" / "bin" / "pgkd"), "audit", str(path), "--json", str(result)], cwd=REPO,
                       env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    row = json.loads(result.read_text())
    return {"set": name, "labels": row.get("labels_total"), "offered": row.get("offered"),
            "labelled": row["texts"] + row.get("unscored", 0), "labels_covered": row.get("labels_covered"),
            "audit_s": row["seconds"], "budget_s": row.get("budget_s"), "command_s": time.time() - started,
            "accuracy": row["accuracy"], "min_confidence": row.get("min_confidence")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("banking77", type=Path)
    p.add_argument("--budget-s", type=float, default=None, help="teacher.audit_budget_s (default: pgkd's)")
    p.add_argument("--sets", default="demo,banking77,split154")
    args = p.parse_args()
    from pgkd.cluster.cpu import cpu_info

    # (folder, max_validation, audit_per_class): banking77's 1,003 validation texts, 90% of them steering, hold 2
    # texts of each of 154 labels, so the split set audits 2 per label (308 texts)
    sets = {"demo": (REPO / "examples" / "demo_bank", 120, None), "banking77": (args.banking77, 770, None),
            "split154": (split_dataset(args.banking77, OUT / "banking77-split154"), 1003, 2)}
    rows = []
    for name in args.sets.split(","):
        print(f"{time.strftime('%H:%M:%S')} {name} ...", file=sys.stderr, flush=True)
        data, max_validation, per_class = sets[name]
        rows.append(audit(name, data, args.budget_s, max_validation, per_class))
        print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    lines = [f"Machine: {cpu_info().describe()}. Embedded teacher (Gemma 3 270M, vLLM CPU); one run per row.", "",
             "| set | labels | audit texts offered | labelled | labels covered | audit s | budget s | "
             "pgkd audit command s (engine load incl.) | accuracy | min_confidence |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['set']} | {r['labels']} | {r['offered']} | {r['labelled']} | {r['labels_covered']} | "
              f"{r['audit_s']:.1f} | {r['budget_s']} | {r['command_s']:.0f} | {r['accuracy']:.3f} | "
              f"{r['min_confidence']:.3f} |" for r in rows]
    (OUT / "audit_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
