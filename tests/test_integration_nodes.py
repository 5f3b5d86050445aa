"""Several nodes on one machine (ray.cluster_utils.Cluster: a head and three student-only nodes, each with its own
scratch folder and nothing else in common but the object store and Redis), a run submitted with `ray job submit`,
and a node lost mid-run: the raylet of the node that hosts a student dies as a lost VM's would. The student comes
back on the spare node, resumes from its last version in the object store (its old node's scratch is gone with
it), and the run finishes by itself with its report in the store; nothing lost or doubled. The simulated teacher
is the instrument. About 90 s on 2 cores."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIG = """
name: nodes
runs_dir: "{runs}"
dataset: {{path: {data}, seeds_per_class: 2, max_validation: 60}}
teacher: {{backend: simulated, error_rate: 0.0, classes_per_batch: 2, examples_per_class: 3, max_batches: 36,
          seconds_per_example: 0.1, allow_repeats: true}}
students:
  - {{name: a, kind: ngram, min_new_examples: 6}}
  - {{name: b, kind: ngram, min_new_examples: 6}}
loop: {{patience: 1000, max_versions: 1000, time_budget_s: 200, poll_interval_s: 0.3}}
redis: {{url: "{redis}", password_env: PGKD_TEST_REDIS_PASSWORD, archive_every_s: 0.5}}
ray: {{address: "{address}", dashboard: false, max_restarts: 3, teacher_resources: {{pgkd_head: 1}},
      evaluator_resources: {{pgkd_head: 1}}, student_resources: {{pgkd_student: 1}}}}
"""

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def nodes(tmp_path, s3_server, redis_server):
    """A head (teacher, evaluator, the job's driver) and three student nodes with one student slot each."""
    from ray.cluster_utils import Cluster

    _, credentials = s3_server
    common = credentials | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                            "PGKD_TEST_REDIS_PASSWORD": urlsplit(redis_server.url).password,
                            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    dashboard = free_port()
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 4, "resources": {"pgkd_head": 4}, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": dashboard, "env_vars": common | {"PGKD_SCRATCH": str(tmp_path / "head")}})
    workers = [cluster.add_node(num_cpus=1, resources={"pgkd_student": 1},
                                env_vars=common | {"PGKD_SCRATCH": str(tmp_path / f"node-{i}")}) for i in range(3)]
    cluster.wait_for_nodes()
    try:
        yield cluster, workers, f"http://127.0.0.1:{dashboard}", common
    finally:
        cluster.shutdown()


def test_a_job_on_several_nodes_loses_the_node_of_a_student_and_finishes_with_nothing_lost(
        tmp_path, nodes, s3_server, redis_server):
    from pgkd.basics import storage
    from pgkd.bus.client import CHECKPOINTS, Bus
    from pgkd.bus.messages import Checkpoint

    cluster, workers, dashboard, common = nodes
    runs, credentials = s3_server
    parts = urlsplit(redis_server.url)
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(runs=runs, data=REPO / "examples" / "demo_bank", address=cluster.address,
                                    redis=f"redis://{parts.hostname}:{parts.port}/0"))
    env = os.environ | common
    submit = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", dashboard, "--no-wait",
                             "--submission-id", "pgkd-nodes", "--entrypoint-num-cpus", "1", "--",
                             sys.executable, "-m", "pgkd.cli", "run", str(config), "--run-id", "nodes-1"],
                            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert submit.returncode == 0, submit.stdout + submit.stderr
    bus = Bus(redis_server.url, "nodes-1", retry_seconds=5)
    versions = lambda name: [c for c in bus.read_all(CHECKPOINTS, Checkpoint) if c.student == name]  # noqa: E731
    deadline = time.time() + 150
    while len(versions("student-a-0")) < 3:
        assert time.time() < deadline and job_status(dashboard, env) in ("PENDING", "RUNNING"), job_logs(dashboard, env)
        time.sleep(1)
    lost_node = bus.get_fields("status:student-a-0")["node"]
    lost = next(w for w in workers if w.node_id == lost_node)
    before = max(c.version for c in versions("student-a-0"))
    cluster.remove_node(lost, allow_graceful=False)  # its raylet and every worker on it die at once
    while job_status(dashboard, env) in ("PENDING", "RUNNING"):
        assert time.time() < deadline + 150, job_logs(dashboard, env)
        time.sleep(2)
    logs = job_logs(dashboard, env)
    assert job_status(dashboard, env) == "SUCCEEDED", logs[-4000:]

    moved_to = bus.get_fields("status:student-a-0")["node"]
    assert moved_to != lost_node and moved_to in {w.node_id for w in workers}
    a = sorted(versions("student-a-0"), key=lambda c: c.version)
    assert [c.version for c in a] == list(range(len(a))) and a[-1].version > before  # none twice, none skipped
    assert all(later.examples_seen >= earlier.examples_seen for earlier, later in zip(a, a[1:]))
    assert all(c.path.startswith("s3://pgkd-runs/team/nodes-1/checkpoints/") for c in a)

    os.environ.update(credentials)
    stored = lambda *rel: storage.join(runs, "nodes-1", *rel)  # noqa: E731
    report = json.loads(storage.read_bytes(stored("report.json")))
    assert report["stopped_by"]["reason"] == "teacher_done"
    rows = [json.loads(line) for line in storage.read_bytes(stored("data", "examples.jsonl")).splitlines()]
    assert len({r["id"] for r in rows}) == len(rows) == report["examples"]["teacher_total"] + report["dataset"]["seeds"]
    from pgkd import load_student

    assert load_student(stored("best_student")).predict(["I lost my card"])[0][0]


def job_status(dashboard: str, env: dict) -> str:
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(dashboard).get_job_status("pgkd-nodes").value)


def job_logs(dashboard: str, env: dict) -> str:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(dashboard).get_job_logs("pgkd-nodes")
