"""The command line on bad input: refused with a clear message, nothing started."""
import subprocess
import sys
from pathlib import Path

from pgkd.redis_server import free_port

REPO = Path(__file__).resolve().parents[1]


def pgkd(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "pgkd.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_unreachable_redis_is_named_without_its_password(tmp_path, tiny_dataset):
    config = tmp_path / "run.yaml"
    config.write_text(f"dataset:\n  path: {tiny_dataset}\nruns_dir: {tmp_path / 'runs'}\n"
                      f"redis:\n  url: redis://:hunter2@127.0.0.1:{free_port()}/0\n")
    proc = pgkd("run", str(config))
    assert proc.returncode == 2
    assert "cannot reach Redis at redis://:***@127.0.0.1" in proc.stderr and "hunter2" not in proc.stderr


def test_bad_config_line_is_named(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("dataset:\n  path: x\nstudents:\n  - name: a\n    alpah: 0.3\n")
    proc = pgkd("run", str(config))
    assert proc.returncode == 2
    assert f"{config}:5: field 'students.0.alpah'" in proc.stderr


def test_status_of_an_unknown_run(tmp_path):
    proc = pgkd("status", "nope", "--runs-dir", str(tmp_path))
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr
