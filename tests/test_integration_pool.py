"""Active learning over a pool file on a real local cluster (issue 14): the pool scorer scores rotating shards on
Ray Data, teachers label what it offers, `pgkd status` shows the pool, the driver crashes, and the resumed run
goes on from the bus without labelling any pool text twice. Simulated teacher: a measuring instrument.
About a minute: marked `integration`."""
import json
import re
import random
import subprocess

import pytest

from tests.conftest import write_dataset
from tests.test_integration import ENV, PGKD, REPO
from tests.test_integration_ops import pgkd, wait_for

pytestmark = pytest.mark.integration
RUN = "itest-pool"
WORDS = {"fruit": "apple pear plum grape melon cherry", "travel": "train bus ticket flight station airport",
         "pets": "cat dog puppy kitten leash vet"}
FILLER = "the a my some today again please maybe".split()


def synthetic_dataset(folder, per_class=(60, 8, 8), seed=0):
    """Three topics of made-up texts: a few topic words among filler, each text unique."""
    rng = random.Random(seed)
    splits = {name: [] for name in ("train", "validation", "test")}
    number = 0
    for label, words in WORDS.items():
        for split, count in zip(splits, per_class):
            for _ in range(count):
                number += 1
                text = rng.sample(words.split(), 2) + rng.sample(FILLER, 3) + [f"n{number}"]
                rng.shuffle(text)
                splits[split].append((" ".join(text), label))
    return write_dataset(folder, splits)


def test_a_pool_file_is_scored_in_rounds_labelled_once_and_kept_across_a_crash_and_resume(tmp_path, reap_servers):
    data = synthetic_dataset(tmp_path / "data")
    train = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    pool = tmp_path / "pool.jsonl"  # the train texts, labels left out, plus one malformed line
    pool.write_text("".join(json.dumps({"text": row["text"]}) + "\n" for row in train[:90]) + "{broken\n"
                    + "".join(json.dumps({"text": row["text"]}) + "\n" for row in train[90:]))
    config = tmp_path / "run.yaml"
    config.write_text(f"""
name: pool
runs_dir: {tmp_path / 'runs'}
dataset: {{path: {data}, seeds_per_class: 2, pool: {pool}, pool_shard_rows: 40, pool_shards_per_round: 2}}
loop: {{patience: 50, time_budget_s: 240, poll_interval_s: 0.3}}
ray: {{dashboard: false}}
teacher:
  backend: simulated
  classes_per_batch: 1
  examples_per_class: 1
  max_batches: 60
  pool_labelling: true
  pool_per_batch: 3
  error_rate: 0.0
  seconds_per_example: 0.3
students:
  - {{name: ngram, kind: ngram, min_new_examples: 3, pool_queries: 6, pool_strategy: diverse_margin}}
""")
    runs = tmp_path / "runs"
    status = lambda: pgkd("status", RUN, "--runs-dir", str(runs)).stdout  # noqa: E731
    proc = subprocess.Popen(PGKD + ["run", str(config), "--run-id", RUN], env=ENV, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = ""

        def two_rounds_and_a_label() -> bool:  # one status call a poll: each is a process start
            nonlocal seen
            seen = status()
            rounds, labelled = re.search(r"; round (\d+) ", seen), re.search(r"(\d+) labelled", seen)
            return bool(rounds and labelled and int(rounds.group(1)) >= 2 and int(labelled.group(1)) >= 1)

        wait_for(two_rounds_and_a_label, "two scoring rounds and a labelled pool text", timeout=150)
        proc.kill()  # the driver crashes: no report, no clean stop
        proc.wait(30)
    finally:
        proc.kill()
    assert "pool: " in seen and "181 rows in 5 shards" in seen and "1 bad rows" in seen, seen
    resumed = pgkd("resume", RUN, "--runs-dir", str(runs), "--set", "teacher.max_batches=90", timeout=300)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    report = json.loads((runs / RUN / "report.json").read_text())
    rows = [json.loads(line) for line in (runs / RUN / "data" / "examples.jsonl").read_text().splitlines()]
    labelled = [r["text"] for r in rows if r["source"] == "pool"]
    assert labelled and len(labelled) == len(set(labelled))  # no pool text labelled twice, before or after
    assert not {r["text"] for r in rows if r["source"] == "seed"} & set(labelled)
    p = report["pool"]
    assert p["rounds"] >= 3 and p["shards_total"] == 5 and p["labelled"] >= len(labelled) and p["bad_rows"] >= 1
    assert p["strategy"] == "diverse_margin" and p["files"] == [str(pool)]
    assert "## Unlabelled pool" in (runs / RUN / "report.md").read_text()
    log = (runs / RUN / "logs" / "pool-scorer.log").read_text()
    assert f"pool row skipped: {pool}:91: not valid JSON" in log
