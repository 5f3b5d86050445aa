"""Run storage by URI end to end, against a local S3-compatible server (moto) and a real redis-server: run, status,
stop, resume on "another machine" (a fresh node-local scratch folder: everything comes from the object store),
predict, export and load_student from s3:// URIs, with the simulated teacher (a measuring instrument). While the
run is live its lease in Redis refuses a second driver, from another runs folder and from another machine that
cannot see its PID. Bad storage is refused before anything starts, naming runs_dir. About 60 s on 2 cores."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
PGKD = [sys.executable, "-m", "pgkd.cli"]
CONFIG = """
name: stored
runs_dir: "{runs}"
dataset: {{path: {data}, seeds_per_class: 2, max_validation: 60}}
teacher: {{backend: simulated, error_rate: 0.0, classes_per_batch: 2, examples_per_class: 3, max_batches: {batches},
          seconds_per_example: 0.05, allow_repeats: true}}
students: [{{name: ng, kind: ngram, min_new_examples: 6}}]
loop: {{patience: 50, max_versions: 500, time_budget_s: 120, poll_interval_s: 0.3}}
redis: {{url: "{redis}", password_env: PGKD_TEST_REDIS_PASSWORD, archive_every_s: 0.5}}
ray: {{dashboard: false}}
"""


def env_for(tmp_path: Path, credentials: dict, node: str, redis_password: str) -> dict:
    return os.environ | credentials | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                                       "PYTHONUNBUFFERED": "1", "PGKD_SCRATCH": str(tmp_path / node),
                                       "PGKD_TEST_REDIS_PASSWORD": redis_password}


def pgkd(args: list[str], env: dict, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run(PGKD + args, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.integration
def test_a_run_in_object_storage_runs_stops_resumes_elsewhere_and_its_student_loads_from_its_uri(
        tmp_path, redis_server, s3_server, monkeypatch):
    from pgkd.basics import storage

    runs, credentials = s3_server
    parts = urlsplit(redis_server.url)
    bare = f"redis://{parts.hostname}:{parts.port}/0"  # the password comes from the environment only
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(runs=runs, data=REPO / "examples" / "demo_bank", batches=200, redis=bare))
    first_node = env_for(tmp_path, credentials, "node-a", parts.password)
    driver = subprocess.Popen(PGKD + ["run", str(config), "--run-id", "s3-1"], env=first_node, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while not re.search(r"student-ng-0: \w+ v[1-9]", (status := pgkd(["status", "s3-1", "--runs-dir", runs],
                                                                         first_node)).stdout):
            assert driver.poll() is None and time.time() < deadline, status.stdout + status.stderr
            time.sleep(1)
        # while it runs, its lease refuses a second driver: one from a local runs folder on this machine, and a
        # resume from another machine (its own empty scratch: it cannot see the first driver's PID)
        elsewhere = tmp_path / "local.yaml"
        elsewhere.write_text(config.read_text().replace(f'runs_dir: "{runs}"', f"runs_dir: {tmp_path / 'local-runs'}"))
        second = pgkd(["run", str(elsewhere), "--run-id", "s3-1"], first_node)
        assert second.returncode == 2 and "run 's3-1' is driven by a driver on host" in second.stderr, second.stderr
        assert not (tmp_path / "local-runs" / "s3-1").exists()
        other_machine = env_for(tmp_path, credentials, "node-c", parts.password)
        hide_the_driver_host(storage_uri(runs, "s3-1", "run.json"), credentials)  # as another host reads it
        refused = pgkd(["resume", "s3-1", "--runs-dir", runs], other_machine)
        assert refused.returncode == 2 and f"(process {driver.pid}," in refused.stderr, refused.stderr
        assert driver.poll() is None  # the live run never noticed
        assert pgkd(["stop", "s3-1", "--runs-dir", runs], first_node).stdout.startswith("stop requested")
        out, _ = driver.communicate(timeout=180)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, out[-3000:]
    assert f"folder {runs.replace('/team?', '/team/s3-1?')}" in out
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    stored = lambda *rel: storage.join(runs, "s3-1", *rel)  # noqa: E731
    first = json.loads(storage.read_bytes(stored("report.json")))
    assert first["stopped_by"]["reason"] == "user" and first["best_student"]["path"] == stored("best_student")
    assert "password" not in storage.read_bytes(stored("run.json")).decode().replace("password_env", "")
    assert parts.password not in storage.read_bytes(stored("run.json")).decode()

    # another machine: its own empty scratch, the first one's gone; everything comes from the object store
    import shutil

    shutil.rmtree(tmp_path / "node-a")
    second_node = env_for(tmp_path, credentials, "node-b", parts.password)
    resumed = pgkd(["resume", "s3-1", "--runs-dir", runs, "--set", "teacher.max_batches=205"], second_node)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    report = json.loads(storage.read_bytes(stored("report.json")))
    assert report["stopped_by"]["reason"] in {"teacher_done", "patience"} and len(report["earlier_sessions"]) == 1
    assert len(report["versions"]) > len(first["versions"])
    rows = [json.loads(line) for line in storage.read_bytes(stored("data", "examples.jsonl")).splitlines()]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) and report["examples"]["teacher_total"] == sum(r["source"] != "seed" for r in rows)
    segments = storage.list_names(stored("data", "examples.stream"))
    assert len(segments) > 1 and all(name.endswith(".jsonl") for name in segments)
    versions = storage.list_names(stored("checkpoints", report["best_student"]["student"]))
    assert "v0000" in versions and all(storage.exists(stored("checkpoints", report["best_student"]["student"], v,
                                                             "manifest.json")) for v in versions)

    predicted = pgkd(["predict", stored("best_student"), "I lost my card"], second_node)
    assert predicted.returncode == 0, predicted.stderr
    label = json.loads(predicted.stdout)["label"]
    from pgkd import load_student

    assert load_student(stored("best_student")).predict(["I lost my card"])[0][0] == label
    exported = pgkd(["export", "s3-1", "--runs-dir", runs, "--format", "hf"], second_node)
    assert exported.returncode == 0 and exported.stdout.strip() == stored("export-hf"), exported.stderr
    assert load_student(stored("export-hf")).predict(["I lost my card"])[0][0] == label


def storage_uri(runs: str, *parts: str) -> str:
    from pgkd.basics import storage

    return storage.join(runs, *parts)


def hide_the_driver_host(location: str, credentials: dict) -> None:
    """run.json as a machine other than the driver's sees it: a host that is not this one, so no PID check can
    tell the driver is alive; only the lease can."""
    from pgkd.basics import storage

    os.environ.update(credentials)
    info = json.loads(storage.read_bytes(location))
    storage.write_bytes(location, json.dumps(info | {"driver_host": "another-node"}))


@pytest.mark.integration
@pytest.mark.parametrize("where, drop_credentials, expected", [
    ("ftp://pgkd-runs/x", False, "unknown storage scheme 'ftp://'"),
    ("s3://no-such-bucket/x?{options}", False, "the bucket of 's3://no-such-bucket/x"),
    ("s3://pgkd-runs/x?{options}", True, "no AWS credentials in the environment or ~/.aws/credentials"),
    ("s3://AKIA:secret@pgkd-runs/x", False, "credentials do not belong in the URI"),
])
def test_bad_run_storage_is_refused_before_anything_starts_naming_runs_dir(
        tmp_path, redis_server, s3_server, where, drop_credentials, expected):
    runs, credentials = s3_server
    options = runs.partition("?")[2]
    config = tmp_path / "run.yaml"
    config.write_text(CONFIG.format(runs=where.format(options=options), data=REPO / "examples" / "demo_bank",
                                    batches=5, redis=redis_server.url).replace(
        "password_env: PGKD_TEST_REDIS_PASSWORD, ", ""))
    env = env_for(tmp_path, credentials, "node", "")
    if drop_credentials:
        env = {k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        env |= {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    started = time.time()
    proc = pgkd(["run", str(config), "--run-id", "bad"], env, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "field 'runs_dir'" in proc.stderr and expected in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "node").exists()  # nothing started, nothing written
    assert time.time() - started < 60
