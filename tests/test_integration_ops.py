"""Operating a live run on a real local cluster: scale it, crash its driver, resume it (vLLM CPU teacher,
n-gram students, embedded Redis). Minutes: marked `integration`."""
import json
import subprocess
import time

import pytest

from tests.test_integration import ENV, NGRAM_STUDENT, PGKD, REPO, few_batches, wait_for_scored_version, write_config

pytestmark = pytest.mark.integration
RUN = "itest-ops"


def pgkd(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(PGKD + list(args), env=ENV, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def wait_for(condition, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


def test_scale_a_live_run_then_crash_its_driver_and_resume(tmp_path, reap_servers):
    config = write_config(tmp_path, few_batches(3, NGRAM_STUDENT))
    runs = tmp_path / "runs"
    status = lambda: pgkd("status", RUN, "--runs-dir", str(runs)).stdout  # noqa: E731
    proc = subprocess.Popen(PGKD + ["run", str(config), "--run-id", RUN, "--set", "loop.patience=50"], env=ENV,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_scored_version(runs, 0, run_id=RUN)
        assert "scale requested" in pgkd("scale", RUN, "--students", "2", "--runs-dir", str(runs)).stdout
        wait_for_scored_version(runs, 0, run_id=RUN, student="student-ngram-1")  # the added student caught up
        refused = pgkd("scale", RUN, "--students", "bert=1", "--runs-dir", str(runs))
        assert refused.returncode == 2 and "no student named ['bert']" in refused.stderr
        pgkd("scale", RUN, "--students", "1", "--runs-dir", str(runs))
        wait_for(lambda: "student-ngram-1: retired (scaled down)" in status(), "student-ngram-1 to retire")
        wait_for_scored_version(runs, 1, run_id=RUN, student="student-ngram-0", timeout=300)  # teacher data in
        proc.kill()  # the driver crashes: no report, no clean stop
        proc.wait(30)
    finally:
        proc.kill()
    assert not (runs / RUN / "report.json").exists()
    resumed = pgkd("resume", RUN, "--runs-dir", str(runs), "--set", "teacher.max_batches=5", timeout=480)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert "resuming run itest-ops (last stopped by a crash)" in resumed.stdout + resumed.stderr
    report = json.loads((runs / RUN / "report.json").read_text())
    assert report["stopped_by"]["reason"] == "teacher_done"
    first = [c for c in report["checkpoints"] if c["student"] == "student-ngram-0"]
    versions = [c["version"] for c in first]
    assert versions == list(range(len(versions))) and len(versions) >= 3, versions  # went on, no repeats, no gap
    assert first[-1]["examples_seen"] == report["dataset"]["seeds"] + report["examples"]["teacher_total"]
    assert {v["student"] for v in report["versions"]} == {"student-ngram-0", "student-ngram-1"}
    assert report["teacher"]["totals"]["batches"] >= 4  # batches of both sessions, counted once
    assert (runs / RUN / "logs" / "teacher-0.jsonl").is_file() and (runs / RUN / "logs" / "evaluator.jsonl").is_file()


def test_scale_teachers_into_and_out_of_a_live_run(tmp_path, reap_servers):
    """Teacher replicas come and go on a live run. The teacher talks to a scripted OpenAI-style endpoint here
    (its replies cannot be scored, so nothing is kept): this test is about the actors, not the texts."""
    from tests.test_teacher_http import ScriptedEndpoint

    endpoint = ScriptedEndpoint([], delay_s=0.05)
    config = write_config(tmp_path, f"""
teacher:
  replicas: 0
  backend: openai
  model: scripted
  base_url: "{endpoint.url}"
  max_retries: 0
  classes_per_batch: 2
  examples_per_class: 2
students:
  - name: ngram
    kind: ngram
""")
    runs, run = tmp_path / "runs", "itest-teachers"
    status = lambda: pgkd("status", run, "--runs-dir", str(runs)).stdout  # noqa: E731
    proc = subprocess.Popen(PGKD + ["run", str(config), "--run-id", run], env=ENV, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_scored_version(runs, 0, run_id=run)
        pgkd("scale", run, "--teachers", "1", "--runs-dir", str(runs))
        wait_for(lambda: "teacher-0: generating" in status() and len(endpoint.requests) > 0, "teacher-0 to work")
        pgkd("scale", run, "--teachers", "0", "--runs-dir", str(runs))
        wait_for(lambda: "teacher-0: retired (scaled down)" in status(), "teacher-0 to retire")
        requests = len(endpoint.requests)
        time.sleep(3)
        assert len(endpoint.requests) == requests  # a retired teacher sends nothing more
        pgkd("stop", run, "--runs-dir", str(runs))
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        endpoint.close()
    assert proc.returncode == 0, out[-3000:]
    assert "teacher-0 finished and left the run (scaled down)" in out
    report = json.loads((runs / run / "report.json").read_text())
    assert report["teacher"]["per_replica"]["teacher-0"]["batches"] >= 1
    assert report["stopped_by"]["reason"] == "user"
    # Resume the stopped run: its embedded Redis comes back from the append-only file (new port, same password);
    # the evaluator replays its reports and, the run being at max_versions already, stops it again at once.
    scored = len(report["versions"])
    resumed = pgkd("resume", run, "--runs-dir", str(runs), "--set", f"loop.max_versions={scored}", timeout=240)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    assert "last stopped by user" in resumed.stdout + resumed.stderr
    again = json.loads((runs / run / "report.json").read_text())
    assert again["stopped_by"]["reason"] == "max_versions" and len(again["versions"]) == scored
    assert [s["reason"] for s in again["earlier_sessions"]] == ["user"]
    assert again["teacher"]["per_replica"]["teacher-0"] == report["teacher"]["per_replica"]["teacher-0"]


def test_a_run_whose_every_teacher_failed_writes_its_report_and_exits_3(tmp_path, reap_servers):
    """An endpoint that answers only 500s: the replica gives up after its bound, the run stops with reason
    'error', writes its report and exports its best (seeds-only) student, and exits 3 so a script can tell (it
    used to exit 0)."""
    from tests.test_teacher_http import ScriptedEndpoint

    endpoint = ScriptedEndpoint([500] * 10_000)
    config = write_config(tmp_path, f"""
teacher:
  replicas: 0
  backend: openai
  model: scripted
  base_url: "{endpoint.url}"
  max_retries: 0
  max_consecutive_failures: 2
students:
  - name: ngram
    kind: ngram
""")
    runs, run = tmp_path / "runs", "itest-teacher-fails"
    proc = subprocess.Popen(PGKD + ["run", str(config), "--run-id", run], env=ENV, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_scored_version(runs, 0, run_id=run)
        pgkd("scale", run, "--teachers", "1", "--runs-dir", str(runs))  # no probe at start: none configured
        out, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
        endpoint.close()
    assert proc.returncode == 3, out[-3000:]
    assert "the run was stopped by an error" in out
    report = json.loads((runs / run / "report.json").read_text())
    assert report["stopped_by"]["reason"] == "error" and "every teacher failed" in report["stopped_by"]["detail"]
    assert report["best_student"]["version"] == 0 and (runs / run / "best_student" / "student.json").is_file()
