"""Files other processes read are replaced whole: a writer killed in the middle leaves the old file."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pgkd.basics.atomic_files import write_atomic

REPO = Path(__file__).resolve().parents[1]


def test_a_private_file_is_owner_only_and_replaced_whole(tmp_path):
    path = tmp_path / "run.json"
    write_atomic(path, '{"a": 1}', private=True)
    write_atomic(path, '{"a": 2}', private=True)
    assert path.read_text() == '{"a": 2}' and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    write_atomic(path, "old")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_run_json_survives_a_writer_killed_mid_write(tmp_path):
    """`pgkd resume` rewrites run.json, the only copy of the embedded Redis's password: SIGKILL it mid-write."""
    path = tmp_path / "run.json"
    path.write_text('{"bus_url": "redis://:secret@127.0.0.1:1/0"}')
    code = ("import sys; from pathlib import Path; from pgkd.runs import write_private; "
            "write_private(Path(sys.argv[1]), 'x' * (400 << 20))")
    writer = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=REPO)
    deadline = time.time() + 30
    while time.time() < deadline and not any(p.name.endswith(".tmp") and p.stat().st_size > (8 << 20)
                                             for p in tmp_path.iterdir()):
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert path.read_text() == '{"bus_url": "redis://:secret@127.0.0.1:1/0"}'
