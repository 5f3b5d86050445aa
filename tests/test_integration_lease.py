"""Two drivers never drive one run: a live run's lease in Redis refuses a second `pgkd run` with the same id from
another runs folder and a `pgkd resume` that cannot see the first driver's PID (run.json says it is on another
host, as it would on a shared folder), both before anything of the run is touched. About 30 s on 2 cores."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}
PGKD = [sys.executable, "-m", "pgkd.cli"]
CONFIG = """
name: leased
runs_dir: {runs}
dataset: {{path: {data}, seeds_per_class: 2, max_validation: 60}}
teacher: {{backend: simulated, error_rate: 0.0, classes_per_batch: 2, examples_per_class: 3, max_batches: 400,
          seconds_per_example: 0.2}}
students: [{{name: ng, kind: ngram, min_new_examples: 6}}]
loop: {{patience: 50, time_budget_s: 120, poll_interval_s: 0.3}}
redis: {{url: "{redis}", driver_lease_s: 6}}
ray: {{dashboard: false}}
"""


@pytest.mark.integration
def test_a_second_driver_is_refused_by_the_lease_from_another_folder_and_without_the_pid(tmp_path, redis_server):
    first_runs, second_runs = tmp_path / "a", tmp_path / "b"
    for runs in (first_runs, second_runs):
        (tmp_path / f"{runs.name}.yaml").write_text(CONFIG.format(runs=runs, data=REPO / "examples" / "demo_bank",
                                                                  redis=redis_server.url))
    driver = subprocess.Popen(PGKD + ["run", str(tmp_path / "a.yaml"), "--run-id", "shared-1"], env=ENV, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_versions(first_runs, "shared-1", driver)
        second = subprocess.run(PGKD + ["run", str(tmp_path / "b.yaml"), "--run-id", "shared-1"], env=ENV, cwd=REPO,
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and "run 'shared-1' is driven by a driver on host" in second.stderr, second.stderr
        assert not (second_runs / "shared-1").exists()  # refused before it took a folder
        info_path = first_runs / "shared-1" / "run.json"
        info = json.loads(info_path.read_text())
        info_path.write_text(json.dumps(info | {"driver_host": "another-node", "driver_pid": 999999}))
        resumed = subprocess.run(PGKD + ["resume", "shared-1", "--runs-dir", str(first_runs)], env=ENV, cwd=REPO,
                                 capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 2 and f"process {driver.pid}" in resumed.stderr, resumed.stderr
        assert driver.poll() is None  # the live run never noticed
        subprocess.run(PGKD + ["stop", "shared-1", "--runs-dir", str(first_runs)], env=ENV, cwd=REPO, timeout=60,
                       check=True, capture_output=True)
        out, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, out[-3000:]
    assert json.loads((first_runs / "shared-1" / "report.json").read_text())["stopped_by"]["reason"] == "user"


def wait_for_versions(runs: Path, run_id: str, driver: subprocess.Popen, timeout_s: float = 120) -> None:
    """Until the run's report stream has a scored version (read with `pgkd status`)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        assert driver.poll() is None, driver.stdout.read()[-3000:]
        status = subprocess.run(PGKD + ["status", run_id, "--runs-dir", str(runs)], env=ENV, cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        if status.returncode == 0 and "macro-F1" in status.stdout:
            return
        time.sleep(1)
    raise AssertionError("the first run never scored a version")
