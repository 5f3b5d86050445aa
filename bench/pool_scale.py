"""Pool scoring at size: texts scored per second and peak memory at 10k, 100k and 1M pool texts (issue 14).

    .venv/bin/python bench/pool_scale.py --sizes 10000,100000,1000000 --student ngram [--rows all|N]
    .venv/bin/python bench/pool_scale.py --sizes 10000,100000,1000000 --student encoder --rows 100000

Each size: a pool file is built from the shared datasets' texts (below), a student trained on banking77 seeds
(10 per class) scores it through the pipeline a run uses (`actors/pool_data.py`: Ray Data flat_map reads of the
shards, a map_batches actor pool that loads the checkpoint once per actor, per-batch candidates merged by
`student/pool_scoring.py`), and the 32 picks are offered on an embedded redis-server as a run offers them.
`--rows all` scores the whole pool in one round; `--rows N` scores one round of the first N rows' shards (what a
run does with dataset.pool_shards_per_round), for students too slow to cover 1M texts here. A thread samples
resident memory every 0.25 s: this process (the scorer's role), every Ray Data worker process (scoring actors,
read tasks) and redis-server. Writes bench/results/pool_scale/results.jsonl and prints the table.

The pool: every text of ../shared/data/{banking77,ag_news}/{train,validation,test}.jsonl (25,683 lines, about
24k distinct texts); past those, text i is text (i mod n) followed by the first six words of another text, so every
row is a realistic short text and nearly all are distinct. Built once per size under bench/results/pool_scale/.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "bench" / "results" / "pool_scale"
SOURCES = [f"{name}/{split}.jsonl" for name in ("banking77", "ag_news") for split in ("train", "validation", "test")]
SHARD_ROWS = 20_000
K = 32


def base_texts(data: Path) -> list[str]:
    texts = []
    for source in SOURCES:
        texts += [json.loads(line)["text"] for line in (data / source).read_text().splitlines() if line.strip()]
    return texts


def build_pool(path: Path, size: int, texts: list[str]) -> Path:
    if path.exists():
        return path
    n = len(texts)
    tmp = path.with_suffix(".partial")
    with tmp.open("w") as out:
        for i in range(size):
            text = texts[i % n]
            if i >= n:
                text += " " + " ".join(texts[(i * 7919 + i // n) % n].split()[:6])
            out.write(json.dumps({"text": text}) + "\n")
    tmp.rename(path)
    return path


def trained_student(kind: str, data: Path, folder: Path):
    from pgkd.student.config import student_settings
    from pgkd.basics.dataset import load_dataset, sample_per_class
    from pgkd.bus.messages import Example
    from pgkd.student.registry import make_student

    dataset = load_dataset(data / "banking77")
    seeds = sample_per_class(dataset.train, 10, 0)
    config = student_settings(name="s", kind=kind, pool_queries=K, pool_strategy="margin", threads=1)
    student = make_student(dataset.label_names, config, "cpu")
    student.fit([Example(text=r["text"], label=r["label"], source="seed") for r in seeds], config)
    return student.save(folder / kind), config


class MemorySampler(threading.Thread):
    """Peak resident memory (MiB) by role, sampled until stopped."""

    def __init__(self, redis_pid: int | None):
        super().__init__(daemon=True)
        import psutil

        self.me, self.redis_pid, self.psutil = psutil.Process(), redis_pid, psutil
        self.peak = {"scorer (this process)": 0.0, "scoring actor (max)": 0.0, "read task (max)": 0.0,
                     "redis-server": 0.0}
        self.private: dict[str, float] = {}
        self.running = True

    def run(self) -> None:
        while self.running:
            self._sample()
            time.sleep(0.25)

    def _sample(self) -> None:
        self._keep("scorer (this process)", self.me)
        for process in self.psutil.process_iter(["cmdline", "pid"]):
            try:
                line = " ".join(process.info["cmdline"] or [])
                if "ScoreBatch" in line:
                    self._keep("scoring actor (max)", process)
                elif "read_shards" in line:
                    self._keep("read task (max)", process)
                elif process.info["pid"] == self.redis_pid:
                    self._keep("redis-server", process)
            except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                pass

    def _keep(self, role: str, process) -> None:
        """Resident (RSS) and private (USS: without shared pages such as Ray's object store) memory, MiB."""
        memory = process.memory_full_info()
        self.peak[role] = max(self.peak[role], memory.rss / (1 << 20))
        self.private[role] = max(self.private.get(role, 0.0), memory.uss / (1 << 20))


def score_once(pool: Path, rows: int | None, checkpoint: Path, config, bus) -> dict:
    from pgkd.actors.pool_data import candidates_of, scoring_round, summaries_of
    from pgkd.basics.pool_files import plan_shards
    from pgkd.bus import pool_queue
    from pgkd.bus.messages import PoolHint
    from pgkd.student.pool_rounds import RoundTally
    from pgkd.student.pool_scoring import RoundCandidates

    planning = time.time()
    shards = plan_shards([pool], SHARD_ROWS)
    planned = time.time() - planning
    if rows:
        shards = shards[:max(1, rows // SHARD_ROWS)]
    candidates, tally = RoundCandidates(K, "margin", False, set()), RoundTally()
    started = time.time()
    for batch in scoring_round(shards, str(checkpoint), config, K, 0, frozenset()):
        candidates.add(candidates_of(batch))
        for row in summaries_of(batch):
            tally.add_summary(*row)
    seconds = time.time() - started
    picked = candidates.pick(K, "margin", 0)
    offered = pool_queue.offer(bus, [PoolHint(id=c.id, text=c.text, uncertainty=c.score, student="s", version=0,
                                              top_labels=c.top_labels) for c in picked])
    return {"shards": len(shards), "texts_scored": tally.scored, "bad": tally.bad, "seconds": round(seconds, 1),
            "texts_per_second": round(tally.scored / seconds, 1), "plan_seconds": round(planned, 2),
            "offered": offered}


def cpu_flags() -> str:
    from pgkd.cluster.cpu import cpu_info

    return cpu_info().describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--student", default="ngram", choices=["ngram", "encoder"])
    parser.add_argument("--rows", default="all", help="'all', or the rows of one round (a multiple of 20000)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    from pgkd.bus.client import Bus
    from pgkd.bus.server import EmbeddedRedis

    OUT.mkdir(parents=True, exist_ok=True)
    data = Path(args.data)
    texts = base_texts(data)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, config = trained_student(args.student, data, Path(tmp))
        redis = EmbeddedRedis(Path(tmp) / "redis")
        redis.start()
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
        try:
            for size in [int(s) for s in args.sizes.split(",")]:
                pool = build_pool(OUT / f"pool-{size}.jsonl", size, texts)
                bus = Bus(redis.url, f"bench-{size}-{args.student}")
                sampler = MemorySampler(redis.process.pid if redis.process else None)
                sampler.start()
                result = score_once(pool, None if args.rows == "all" else int(args.rows), checkpoint, config, bus)
                sampler.running = False
                sampler.join()
                row = {"date": time.strftime("%Y-%m-%d"), "pool_texts": size, "student": args.student,
                       "pool_file_mib": round(pool.stat().st_size / (1 << 20), 1), **result,
                       "peak_rss_mib": {k: round(v) for k, v in sampler.peak.items()},
                       "peak_uss_mib": {k: round(v) for k, v in sampler.private.items()},
                       "cpu": cpu_flags(), "cores": os.cpu_count(), "python": platform.python_version()}
                print(json.dumps(row), flush=True)
                with (OUT / "results.jsonl").open("a") as out:
                    out.write(json.dumps(row) + "\n")
        finally:
            ray.shutdown()
            redis.stop()


if __name__ == "__main__":
    main()
