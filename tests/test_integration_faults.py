"""Faults during a real start: `pgkd run` is interrupted with SIGINT or SIGTERM after its redis-server started,
while Ray starts, and (SIGTERM, which ray.init would take over) once the actors run. Afterwards no process the
run started survives, the exit is a clean one (a message, no traceback), a failed start leaves no folder and a
clean stop writes the report, every file and folder of the run owner-only. No engine: the teacher has 0 replicas, the student is an n-gram model."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def start_run(tmp_path, tiny_dataset) -> subprocess.Popen:
    config = tmp_path / "run.yaml"
    config.write_text(f"dataset:\n  path: {tiny_dataset}\nruns_dir: {tmp_path / 'runs'}\nteacher:\n  replicas: 0\n"
                      f"students:\n  - name: ng\n    kind: ngram\n    epochs: 2\nray:\n  dashboard: false\n"
                      f"  num_cpus: 2\nloop:\n  time_budget_s: 120\n")
    return subprocess.Popen([sys.executable, "-m", "pgkd.cli", "run", str(config), "--run-id", "fault"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(proc: subprocess.Popen, seen: dict, ready, timeout: float = 60) -> None:
    """Poll the run's process tree (remembering every process in it) until ready(names) holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            for child in psutil.Process(proc.pid).children(recursive=True):
                seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            pass
        names = " ".join(cmdline(p) for p in seen.values())
        if ready(names):
            return
        time.sleep(0.05)
    raise AssertionError(f"stage not reached in {timeout}s: {names[:500]}")


def cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie
        return ""


def survivors(seen: dict, grace: float = 15) -> list[str]:
    """Processes of the run still alive (zombies are dead: only their parent has not reaped them yet)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = [p for p in seen.values() if cmdline(p)]
        if not alive:
            return []
        time.sleep(0.2)
    return [cmdline(p)[:200] for p in alive]


STAGES = {
    "after Redis started": lambda names: "redis-server" in names,
    "during Ray start": lambda names: "gcs_server" in names,
}


@pytest.mark.parametrize("stage", sorted(STAGES))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_leaves_nothing(stage, sig, tmp_path, tiny_dataset, reap_servers):
    proc, seen = start_run(tmp_path, tiny_dataset), {}
    try:
        wait_for(proc, seen, STAGES[stage])
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err[-2000:]
    assert f"pgkd: stopped by {signal.Signals(sig).name}" in err and "Traceback" not in err, err[-2000:]
    assert survivors(seen) == []
    assert not (tmp_path / "runs" / "fault").exists()  # a failed start leaves no folder


def test_sigterm_once_running_stops_cleanly_with_a_report(tmp_path, tiny_dataset, reap_servers):
    """ray.init installs its own SIGTERM handler (it exited mid-run, with a C++ stack dump and no report):
    the run's handler is back after it, so SIGTERM is a clean stop."""
    proc, seen = start_run(tmp_path, tiny_dataset), {}
    try:
        checkpoints = tmp_path / "runs" / "fault" / "checkpoints"  # a student version saved: files of actors too
        wait_for(proc, seen, lambda names: "EvaluatorActor" in names and checkpoints.is_dir(), timeout=90)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode in (0, 1), err[-2000:]  # 1: no student version was scored before the stop
    assert "Traceback" not in err, err[-3000:]
    report = json.loads((tmp_path / "runs" / "fault" / "report.json").read_text())
    assert report["stopped_by"]["reason"] == "user" and "signal 15" in report["stopped_by"]["detail"]
    assert survivors(seen) == []
    run_dir = tmp_path / "runs" / "fault"  # what the driver, redis-server and the actors wrote: owner-only
    shared = {str(p.relative_to(run_dir)): oct(p.stat().st_mode & 0o777) for p in [run_dir, *run_dir.rglob("*")]
              if p.stat().st_mode & 0o077}
    assert not shared and (run_dir / "redis").is_dir() and (run_dir / "checkpoints").is_dir(), shared


def test_a_second_sigterm_once_running_ends_every_process_at_once(tmp_path, tiny_dataset, reap_servers):
    """The second signal must not raise into a Ray call (seen: SystemError in ray.wait and a clean-up that never
    finished): it stops the embedded Redis, kills the processes the driver started and exits 143."""
    proc, seen = start_run(tmp_path, tiny_dataset), {}
    try:
        wait_for(proc, seen, lambda names: "EvaluatorActor" in names, timeout=90)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopping every process of the run now" in out + err and "Traceback" not in err, (out + err)[-2000:]
    assert survivors(seen) == []
    assert (tmp_path / "runs" / "fault" / "redis").is_dir()  # the run stays resumable
