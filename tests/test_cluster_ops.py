"""pgkd on a real Ray cluster started with `ray start --head`, as on a cluster: a run submitted with
`ray job submit` (working dir upload, ray_configs/runtime_env.yaml, entrypoint `pgkd run`), and pgkd's custom
metrics on the cluster's Prometheus endpoint.

The head runs under `ray start --block` in its own session, with its own temp dir and ports: the teardown
SIGTERMs that one process, which stops exactly the processes it started (`ray stop` would stop every Ray on the
machine), then kills whatever of its process tree is left. Token auth is on, with a token made for this test.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import write_dataset

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's ray and pgkd, as a cluster image has them on PATH

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Head:
    def __init__(self, proc: subprocess.Popen, env: dict, gcs: str, dashboard: str, metrics: int):
        self.proc, self.env, self.gcs, self.dashboard, self.metrics_port = proc, env, gcs, dashboard, metrics

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            return reply.read().decode()


def wait_for_dashboard(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{url}/api/version", timeout=2)
            return
        except urllib.error.HTTPError:  # it answers (401 without the token): it is up
            return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"no dashboard at {url} after {timeout}s:\n{log.read_text()[-3000:]}")


def stop_head(proc: subprocess.Popen) -> None:
    """Stop only this head: SIGTERM to `ray start --block` stops the processes it started; then kill what is
    left of its tree (a job's entrypoint runs in a session of its own)."""
    tree = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    _, alive = psutil.wait_procs(tree, timeout=10)
    for leftover in alive:
        leftover.kill()


@pytest.fixture(scope="module")
def head():
    temp_dir = tempfile.mkdtemp(prefix="pgkd-ray-", dir="/tmp")  # short: Ray's socket paths must stay < 108
    port, dashboard_port, metrics_port = free_port(), free_port(), free_port()
    env = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                        "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
                        "RAY_AUTH_TOKEN": secrets.token_hex(32), "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    log = Path(temp_dir) / "ray-start.log"
    command = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
               "--port", str(port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port),
               "--num-cpus", "4", "--include-dashboard", "true", "--temp-dir", temp_dir,
               "--metrics-export-port", str(metrics_port), "--disable-usage-stats",
               # fixed defaults (10001, 52365) would collide with another head on this machine
               "--ray-client-server-port", str(free_port()), "--dashboard-agent-listen-port", str(free_port())]
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        wait_for_dashboard(dashboard, proc, log)
        yield Head(proc, env, f"127.0.0.1:{port}", dashboard, metrics_port)
    finally:
        stop_head(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def write_tiny_run(tmp_path: Path) -> Path:
    """Four seeds, no teacher: the ngram student trains v0, the evaluator scores it, max_versions ends the run."""
    rows = {
        "train": [("where is my new card", "card"), ("my card has not arrived", "card"),
                  ("send money to my friend", "transfer"), ("how do I transfer cash", "transfer")],
        "validation": [("card still not here", "card"), ("transfer funds to mom", "transfer")],
        "test": [("when does my card come", "card"), ("wire money abroad", "transfer")],
    }
    data = write_dataset(tmp_path / "data", rows)
    config = tmp_path / "tiny.yaml"
    config.write_text(f"name: tiny\ndataset:\n  path: {data}\nloop:\n  poll_interval_s: 0.3\n")
    return config


def test_ray_job_submit_runs_pgkd_to_a_report(head, tmp_path):
    config, runs = write_tiny_run(tmp_path), tmp_path / "runs"
    started = time.time()
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", head.dashboard, "--working-dir", ".",
         "--runtime-env", "ray_configs/runtime_env.yaml", "--entrypoint-num-cpus", "1", "--",
         "pgkd", "run", str(config), "--run-id", "job-1", "--set", f"runs_dir={runs}", "--set", "teacher.replicas=0",
         "--set", "students.0.name=ngram", "--set", "students.0.kind=ngram", "--set", "loop.max_versions=1"],
        env=head.env, cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    out = proc.stdout + proc.stderr
    print(f"ray job submit took {time.time() - started:.0f}s")
    assert proc.returncode == 0 and "succeeded" in out, out[-4000:]
    driver_log = (runs / "job-1" / "logs" / "driver.log").read_text()  # Ray's own lines, kept off the terminal
    assert f"Connecting to existing Ray cluster at address: {head.gcs}" in driver_log  # joined, did not start one
    assert "Connecting to existing Ray cluster" not in out
    report = json.loads((runs / "job-1" / "report.json").read_text())
    assert report["stopped_by"]["reason"] == "max_versions"
    assert report["best_student"]["student"] == "student-ngram-0" and report["best_student"]["version"] == 0
    assert (runs / "job-1" / "best_student").is_dir()
    # the run's own actors recorded their metrics on this cluster's endpoint
    found = wait_for_metrics(head, {"ray_pgkd_student_version": 'student="student-ngram-0"',
                                    "ray_pgkd_best_macro_f1": 'student="student-ngram-0"'})
    best_f1 = report["best_student"]["validation"]["macro_f1"]
    assert found == {"ray_pgkd_student_version": 0.0, "ray_pgkd_best_macro_f1": best_f1}


RECORDER = """
import sys, ray
ray.init(address=sys.argv[1], namespace="pgkd-metrics-test")

@ray.remote(num_cpus=0)
class Recorder:
    def record(self):
        from pgkd.actors.metrics import record_evaluation, record_queue, record_teacher_batch, record_version
        record_teacher_batch("teacher-7", {"generated": 5, "kept": 3, "busy_seconds": 2.0, "completion_tokens": 40,
                                            "wall_seconds": 2.5})
        record_version("student-m-7", 2, 30)
        record_evaluation("student-m-7", 0.75, 0.8)
        record_queue("examples:student-m-7", 4)
        return True

recorder = Recorder.remote()
assert ray.get(recorder.record.remote())
print("recorded", flush=True)
sys.stdin.readline()  # keep the actor alive until the test has read the endpoint
"""

EXPECTED = {  # Ray adds the ray_ prefix, and _total to counters
    'ray_pgkd_examples_generated_total': ('actor="teacher-7"', 5.0),
    'ray_pgkd_examples_kept_total': ('actor="teacher-7"', 3.0),
    'ray_pgkd_teacher_tokens_per_second': ('actor="teacher-7"', 20.0),
    'ray_pgkd_teacher_engine_busy': ('actor="teacher-7"', 0.8),
    'ray_pgkd_student_version': ('student="student-m-7"', 2.0),
    'ray_pgkd_student_examples_seen': ('student="student-m-7"', 30.0),
    'ray_pgkd_evaluations_total': ('student="student-m-7"', 1.0),
    'ray_pgkd_macro_f1': ('student="student-m-7"', 0.75),
    'ray_pgkd_best_macro_f1': ('student="student-m-7"', 0.8),
    'ray_pgkd_queue_depth': ('queue="examples:student-m-7"', 4.0),
}


def sample(text: str, name: str, tag: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and tag in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for_metrics(head: Head, wanted: dict[str, str], timeout: float = 40) -> dict[str, float | None]:
    """Poll the endpoint until every metric name shows a sample with its tag (Ray exports every few seconds)."""
    deadline = time.time() + timeout
    while True:
        text = head.metrics()
        found = {name: sample(text, name, tag) for name, tag in wanted.items()}
        if None not in found.values() or time.time() > deadline:
            return found
        time.sleep(2)


def start_recorder(head: Head) -> subprocess.Popen:
    driver = subprocess.Popen([sys.executable, "-c", RECORDER, head.gcs], env=head.env, cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in driver.stdout:  # Ray's own log lines come first
        lines.append(line)
        if line.strip() == "recorded":
            return driver
    raise AssertionError("the recording driver failed:\n" + "".join(lines)[-3000:])


def test_custom_metrics_reach_the_prometheus_endpoint(head):
    started = time.time()
    driver = start_recorder(head)
    try:
        found = wait_for_metrics(head, {name: tag for name, (tag, _) in EXPECTED.items()})
        print(f"metrics on the endpoint {time.time() - started:.0f}s after the driver started")
        assert found == {name: value for name, (_, value) in EXPECTED.items()}
    finally:
        driver.communicate(input="\n", timeout=30)
