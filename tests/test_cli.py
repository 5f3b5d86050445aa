"""The command line on bad input: refused with a clear message, nothing started."""
import subprocess
import sys
from pathlib import Path

from pgkd.bus.server import free_port

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
    assert "cannot reach Redis at redis://***@127.0.0.1" in proc.stderr and "hunter2" not in proc.stderr


def test_bad_config_line_is_named(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("dataset:\n  path: x\nstudents:\n  - name: a\n    alpah: 0.3\n")
    proc = pgkd("run", str(config))
    assert proc.returncode == 2
    assert f"{config}:5: field 'students.0.alpah'" in proc.stderr


def test_status_of_an_unknown_run(tmp_path):
    proc = pgkd("status", "nope", "--runs-dir", str(tmp_path))
    assert proc.returncode == 2 and "no run 'nope'" in proc.stderr


def test_status_reads_a_live_run_without_importing_ray_or_the_actors(tmp_path, tiny_dataset):
    """`pgkd status` is a Redis read: `python -X importtime` shows no module of Ray or of actors/ loaded."""
    from pgkd.config import load_config
    from pgkd.bus.client import Bus
    from pgkd.bus.control import set_status
    from pgkd.bus.roster import register_actor
    from pgkd.bus.server import EmbeddedRedis
    from pgkd.driver import save_config
    from pgkd.runs import write_run_file

    run_dir = tmp_path / "runs" / "live"
    run_dir.mkdir(parents=True)
    config_file = tmp_path / "run.yaml"
    config_file.write_text(f"dataset:\n  path: {tiny_dataset}\n")
    save_config(load_config(config_file), run_dir / "config.yaml")
    server = EmbeddedRedis(run_dir / "redis").start()
    try:
        write_run_file(run_dir, "live", server.url, embedded=True)
        bus = Bus(server.url, "live")
        register_actor(bus, "teacher", "teacher-0")
        set_status(bus, "teacher-0", state="generating")
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "pgkd.cli", "status", "live",
                               "--runs-dir", str(tmp_path / "runs")], capture_output=True, text=True, cwd=REPO,
                              timeout=120)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "teacher-0: generating" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "pgkd.bus.roster" in imported and "pgkd.live_status" in imported  # the reading is real
    assert not {m for m in imported if m == "ray" or m.startswith(("ray.", "actors"))}, \
        sorted(m for m in imported if m.startswith(("ray", "actors")))
