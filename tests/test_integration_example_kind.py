"""The README's example kind (pgkd/student/kinds/fasttext.py) in a real run: local Ray, the bus, the real student,
evaluator and finishing, taught by the simulated teacher (labelled train texts, no model). A new kind file needs
nothing else to train, be scored, be chosen and be saved. About 15 s on 2 cores."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
CONFIG = """
name: example-kind
runs_dir: {runs}
dataset:
  path: {data}
  seeds_per_class: 2
  max_validation: 60
teacher: {{backend: simulated, error_rate: 0.0, classes_per_batch: 2, examples_per_class: 3, max_batches: 30}}
students:
  - name: ft
    kind: fasttext
    min_new_examples: 6
    epochs: 40
loop: {{patience: 3, time_budget_s: 120, poll_interval_s: 0.3}}
ray: {{dashboard: false}}
"""


@pytest.mark.integration
def test_the_example_kind_trains_in_a_real_run_with_the_simulated_teacher(tmp_path):
    from pgkd.student.registry import load_student

    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(runs=tmp_path / "runs", data=REPO / "examples" / "demo_bank"))
    proc = subprocess.run([sys.executable, "-m", "pgkd.cli", "run", str(config), "--run-id", "ft-1"], env=ENV,
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / "runs" / "ft-1"
    report = json.loads((run_dir / "report.json").read_text())
    versions = [c for c in report["checkpoints"] if "-ft-" in c["student"]]
    assert len(versions) >= 2 and versions[-1]["examples_seen"] > versions[0]["examples_seen"]  # teacher's texts
    best = report["best_student"]
    assert "-ft-" in best["student"] and best["test"]["macro_f1"] > 2 / report["dataset"]["labels"]  # twice chance
    student = load_student(run_dir / "best_student")
    assert student.kind == "fasttext"
    assert student.predict(["I lost my card"])[0][0] in student.labels
