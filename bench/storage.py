"""The price of run storage by URI and of several nodes, on one machine (issue 24).

    .venv/bin/python bench/storage.py [--repeats 5] [--out bench/results/storage.json]

1. Per version, for the MiniLM encoder (frozen: a head; fine-tuned: the whole encoder) and the n-gram student
   trained on the demo dataset's seeds: bytes
   of the committed folder, seconds to commit it locally (commit.py: write, fsync, manifest, rename), to publish
   it to an S3-compatible server (moto on 127.0.0.1, a Python server: a real S3 is farther and faster per byte)
   and to fetch it back into a cold node-local cache, checked against the manifest.
2. A whole run with the simulated teacher (paced at 0.1 s per example, 60 batches, two n-gram students), (a) on
   one node with a local runs folder and the embedded Redis, (b) on three nodes of a ray.cluster_utils.Cluster
   (a head and two student nodes, their own scratch each) with runs_dir in the S3 server and a redis-server
   both reach: wall time, versions, and the seconds from each checkpoint's commit to its score (median, p90).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
DATA = REPO / "examples" / "demo_bank"
RUN = """
name: bench-storage
runs_dir: "{runs}"
dataset: {{path: {data}, seeds_per_class: 2, max_validation: 60}}
teacher: {{backend: simulated, error_rate: 0.0, classes_per_batch: 2, examples_per_class: 3, max_batches: 60,
          seconds_per_example: 0.1, allow_repeats: true}}
students: [{{name: a, kind: ngram, min_new_examples: 6}}, {{name: b, kind: ngram, min_new_examples: 6}}]
loop: {{patience: 1000, max_versions: 1000, time_budget_s: 300, poll_interval_s: 0.3}}
redis: {{archive_every_s: 0.5{redis}}}
ray: {{dashboard: false{ray}}}
"""


def s3_server() -> tuple[str, dict, object]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_EC2_METADATA_DISABLED": "true"}
    boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1", aws_access_key_id="bench",
                 aws_secret_access_key="bench").create_bucket(Bucket="bench")
    os.environ.update(credentials)
    return f"s3://bench/runs?endpoint_override={host}:{port}&scheme=http&region=us-east-1", credentials, server


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def per_version(root: str, repeats: int) -> dict:
    from pgkd.basics import storage
    from pgkd.basics.dataset import load_dataset, sample_per_class
    from pgkd.bus.messages import Example
    from pgkd.student.commit import commit_folder
    from pgkd.student.config import student_settings
    from pgkd.student.registry import load_student, make_student

    data = load_dataset(DATA)
    seeds = [Example(text=r["text"], label=r["label"], source="seed") for r in sample_per_class(data.train, 5, 0)]
    rows = {}
    for name, fields in (("encoder (frozen MiniLM)", {"kind": "encoder", "epochs": 20}),
                         ("encoder (fine-tuned MiniLM)", {"kind": "encoder", "finetune": True, "epochs": 1}),
                         ("ngram", {"kind": "ngram", "epochs": 20})):
        kind = fields["kind"] + ("-ft" if fields.get("finetune") else "")
        settings = student_settings(**fields)
        student = make_student(data.label_names, settings, "cpu")
        student.fit(seeds, settings)
        timings = {"commit_local_s": [], "publish_s": [], "fetch_cold_s": [], "load_s": []}
        with tempfile.TemporaryDirectory() as scratch:
            for i in range(repeats):
                started = time.perf_counter()
                local = commit_folder(student.save, Path(scratch) / kind / f"v{i:04d}")
                timings["commit_local_s"].append(time.perf_counter() - started)
                started = time.perf_counter()
                where = storage.upload_folder(local, storage.join(root, "per-version", kind, f"v{i:04d}"))
                timings["publish_s"].append(time.perf_counter() - started)
                started = time.perf_counter()
                fetched = storage.fetch_folder(where, Path(scratch) / f"cache-{i}")
                timings["fetch_cold_s"].append(time.perf_counter() - started)
                started = time.perf_counter()
                load_student(fetched, "cpu")
                timings["load_s"].append(time.perf_counter() - started)
            rows[name] = {"bytes": folder_bytes(local), "files": sum(1 for p in local.rglob("*") if p.is_file())} | {
                name: {"mean": statistics.mean(v), "std": statistics.pstdev(v)} for name, v in timings.items()}
        print(name, json.dumps(rows[name]), flush=True)
    return rows


def whole_run(label: str, runs: str, env: dict, redis: str = "", ray: str = "") -> dict:
    from pgkd.basics import storage

    with tempfile.TemporaryDirectory() as work:
        config = Path(work) / "run.yaml"
        config.write_text(RUN.format(runs=runs, data=DATA, redis=redis, ray=ray))
        started = time.time()
        proc = subprocess.run([sys.executable, "-m", "pgkd.cli", "run", str(config), "--run-id", label],
                              env=os.environ | env | {"PGKD_SCRATCH": str(Path(work) / "driver")}, cwd=REPO,
                              capture_output=True, text=True, timeout=900)
        wall = time.time() - started
        if proc.returncode != 0:
            raise SystemExit(f"{label} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        report = json.loads(storage.read_bytes(storage.join(runs, label, "report.json")))
    created = {f"{c['student']}@v{c['version']}": c["created"] for c in report["checkpoints"]}
    lags = sorted(v["created"] - created[f"{v['student']}@v{v['version']}"] for v in report["versions"]
                  if f"{v['student']}@v{v['version']}" in created)
    row = {"wall_s": round(wall, 1), "elapsed_s": report["elapsed_seconds"], "versions": len(report["versions"]),
           "kept": report["teacher"]["totals"].get("kept"), "stopped_by": report["stopped_by"]["reason"],
           "commit_to_score_s": {"median": round(statistics.median(lags), 3),
                                 "p90": round(lags[int(0.9 * (len(lags) - 1))], 3)}}
    print(label, json.dumps(row), flush=True)
    return row


def three_nodes(runs: str, credentials: dict) -> dict:
    from ray.cluster_utils import Cluster

    from pgkd.bus.server import EmbeddedRedis

    with tempfile.TemporaryDirectory() as work:
        redis = EmbeddedRedis(Path(work) / "redis").start()
        env = credentials | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        cluster = Cluster(initialize_head=True, connect=False, head_node_args={
            "num_cpus": 3, "resources": {"pgkd_head": 3}, "env_vars": env | {"PGKD_SCRATCH": f"{work}/head"}})
        for i in range(2):
            cluster.add_node(num_cpus=1, resources={"pgkd_student": 1}, env_vars=env | {"PGKD_SCRATCH": f"{work}/n{i}"})
        cluster.wait_for_nodes()
        try:
            ray = (f", address: \"{cluster.address}\", teacher_resources: {{pgkd_head: 1}}, "
                   f"evaluator_resources: {{pgkd_head: 1}}, student_resources: {{pgkd_student: 1}}")
            return whole_run("three-nodes-s3", runs, env, redis=f", url: \"{redis.url}\"", ray=ray)
        finally:
            cluster.shutdown()
            redis.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "storage.json"))
    args = p.parse_args()
    root, credentials, server = s3_server()
    try:
        results = {"cpu": cpu_flags(), "per_version": per_version(root, args.repeats)}
        with tempfile.TemporaryDirectory() as local_runs:
            results["one_node_local"] = whole_run("one-node-local", local_runs, {})
        results["three_nodes_s3"] = three_nodes(root, credentials)
    finally:
        server.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"written {args.out}")
    return 0


def cpu_flags() -> str:
    text = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile") if f in flags]
    return f"{os.cpu_count()} cores, {model}, {' '.join(wanted)}"


if __name__ == "__main__":
    sys.exit(main())
