"""Chaos: a run over a network to Redis that cuts connections at random, whose student, evaluator and driver are
SIGKILLed on the way (the driver's run is then resumed), still finishes by itself with nothing lost or doubled.

The run uses the simulated teacher (a measuring instrument: it answers from labelled texts, so every example it
writes has a known id) and two n-gram students; Redis is a real redis-server behind tests/cutting_proxy.py.
About two to three minutes on 2 cores."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from pgkd.bus.client import CHECKPOINTS, Bus
from pgkd.bus.archive import StreamArchive, full_history
from pgkd.bus.messages import Checkpoint, ExampleBatch
from pgkd.bus.server import EmbeddedRedis
from tests.cutting_proxy import CuttingProxy
from tests.test_integration import ENV, PGKD, REPO

pytestmark = pytest.mark.integration
RUN = "chaos"
WORDS = {"card": "card lost stolen arrive pin atm blocked", "transfer": "send money wire account friend iban fee",
         "loan": "loan rate mortgage interest borrow repay term", "address": "address move street change update city"}
FILLER = "please help today my the a now urgent thanks hello could you".split()


def make_dataset(folder: Path, per_class: int = 220) -> Path:
    """4 intents of made-up texts: their own words mixed with shared filler (enough for a long reservoir)."""
    rng = random.Random(3)
    folder.mkdir(parents=True)
    (folder / "labels.json").write_text(json.dumps(sorted(WORDS)))
    splits = {"train": per_class, "validation": 20, "test": 20}
    for split, count in splits.items():
        rows = []
        for label, words in WORDS.items():
            own = words.split()
            for i in range(count):
                text = " ".join(rng.sample(own, 3) + rng.sample(FILLER, 3) + [f"{split[:2]}{i}"])
                rows.append(json.dumps({"text": text, "label": label}))
        (folder / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def write_config(tmp_path: Path, data: Path, redis_url: str) -> Path:
    path = tmp_path / "chaos.yaml"
    path.write_text(f"""
name: chaos
runs_dir: {tmp_path / 'runs'}
dataset: {{path: {data}, seeds_per_class: 5}}
teacher:
  backend: simulated
  classes_per_batch: 4
  examples_per_class: 4
  seconds_per_example: 0.12
  max_batches: 36
students:
  - {{name: ngram, kind: ngram, min_new_examples: 16}}
  - {{name: tri, kind: ngram, word_n: 3, min_new_examples: 16}}
loop: {{patience: 100, max_versions: 1000, time_budget_s: 400, poll_interval_s: 0.3}}
redis: {{url: "{redis_url}", retry_seconds: 60, archive_every_s: 1}}
ray: {{dashboard: false, max_restarts: 5}}
""")
    return path


def actor_process(title: str) -> psutil.Process | None:
    for process in psutil.process_iter(["cmdline"]):
        if any(title in part for part in process.info["cmdline"] or []):
            return process
    return None


def wait_until(condition, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def ray_processes() -> set[int]:
    names = ("raylet", "gcs_server", "ray::", "dashboard")
    return {p.pid for p in psutil.process_iter(["cmdline"])
            if any(n in " ".join(p.info["cmdline"] or []) for n in names)}


def test_a_run_under_cuts_and_kills_loses_and_doubles_nothing(tmp_path, reap_servers):
    before = ray_processes()
    server = EmbeddedRedis(tmp_path / "redis").start()
    proxy = CuttingProxy("127.0.0.1", server.port)
    proxy.start_chaos(every_s=1.0, seed=7)
    through = server.url.replace(f":{server.port}/", f":{proxy.port}/")
    config = write_config(tmp_path, make_dataset(tmp_path / "data"), through)
    runs = tmp_path / "runs"
    bus = Bus(server.url, RUN)  # the test's own view, straight to Redis
    versions = lambda: len(bus.read_all(CHECKPOINTS, Checkpoint))  # noqa: E731
    log = (tmp_path / "driver.log").open("w")
    driver = subprocess.Popen(PGKD + ["run", str(config), "--run-id", RUN], env=ENV, cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: versions() >= 4, "four versions")
        actor_process("ray::StudentActor").send_signal(signal.SIGKILL)
        wait_until(lambda: versions() >= 7, "versions after the student's restart")
        actor_process("ray::EvaluatorActor").send_signal(signal.SIGKILL)
        wait_until(lambda: versions() >= 10, "versions after the evaluator's restart")
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        resumed = subprocess.run(PGKD + ["resume", RUN, "--runs-dir", str(runs)], env=ENV, cwd=REPO,
                                 capture_output=True, text=True, timeout=360)
        history = full_history(bus, StreamArchive(runs / RUN / "data"), ExampleBatch)  # archive + what Redis holds
    finally:
        driver.kill()
        proxy.close()
        server.stop()
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-3000:] + (tmp_path / "driver.log").read_text()[-3000:]
    assert proxy.cuts >= 20, proxy.cuts  # the network was cut all along
    report = json.loads((runs / RUN / "report.json").read_text())
    assert report["stopped_by"]["reason"] == "teacher_done", report["stopped_by"]
    rows = [json.loads(line) for line in (runs / RUN / "data" / "examples.jsonl").read_text().splitlines()]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "an example was archived twice"
    produced = [(b.producer, b.batch) for b in history]
    assert len(produced) == len(set(produced)), "a batch was published twice"
    assert sorted(e.id for b in history for e in b.examples) == sorted(ids)  # the report's data is that history
    taught = [row for row in rows if row["source"] != "seed"]
    totals = report["teacher"]["totals"]
    assert totals["kept"] == len(taught) > 0
    for name, counts in (report["teacher"]["kept_reconciled"] or {}).items():
        assert counts["counted"] <= counts["archived"], f"{name} counted a batch twice: {counts}"
    seeds = report["dataset"]["seeds"]
    for student in ("student-ngram-0", "student-tri-0"):
        last = [c for c in report["checkpoints"] if c["student"] == student][-1]
        assert last["examples_seen"] == seeds + len(taught), (student, last)  # every example once, none twice
    print(f"chaos: {proxy.cuts} connections cut, student, evaluator and driver SIGKILLed; {len(taught)} teacher "
          f"examples, {len(produced)} batches, {len(report['checkpoints'])} versions; counters reconciled: "
          f"{report['teacher']['kept_reconciled']}; lost 0, doubled 0")
    # Ray's two agents of the killed driver's cluster exit by themselves within about a minute of their raylet
    wait_until(lambda: not (ray_processes() - before), "every process of the run to end", timeout=150)
