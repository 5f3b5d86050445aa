"""The real loop: local Ray, redis-server, the vLLM CPU engine with Gemma 3 270M, the MiniLM student.

Minutes, not seconds: marked `integration`. It runs on CPU, so it needs no GPU.
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PGKD = [sys.executable, "-m", "pgkd.cli"]
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PYTHONUNBUFFERED": "1"}

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(f"""
name: itest
runs_dir: {tmp_path / 'runs'}
dataset:
  path: {REPO / 'examples' / 'demo_bank'}
  task: Customer messages to a bank
  seeds_per_class: 3
  max_validation: 60
loop:
  patience: 3
  time_budget_s: 420
  poll_interval_s: 0.3
ray:
  dashboard: false
{extra}
""")
    return path


OWN_LOGGERS = ("pgkd", "basics", "bus", "teacher", "student", "evaluator", "actors", "cluster")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\s+(\S+)")
FOREIGN = re.compile(r"\(\w+ pid=\d+\)"  # Ray's prefix of an actor's line
                     r"|\b(INFO|WARNING|ERROR|DEBUG) \d\d-\d\d \d\d:"  # vLLM's format
                     r"|\.(py|cc):\d+\]? |core_worker|raylet")


def foreign_lines(output: str) -> list[str]:
    """Lines a run's driver printed that are not pgkd's own: Ray's actor prefixes, vLLM's or Ray's log format, a
    log record of another library."""
    bad = []
    for line in output.splitlines():
        stamped = TIMESTAMP.match(line)
        if FOREIGN.search(line) or (stamped and stamped.group(1).split(".")[0] not in OWN_LOGGERS):
            bad.append(line)
    return bad


def test_foreign_lines_knows_ray_and_vllm_lines_from_pgkd_lines():
    ray_lines = ["2026-11-30 05:52:31,565\tINFO worker.py:2038 -- Started a local Ray instance.",
                 "\x1b[36m(TeacherActor pid=18567)\x1b[0m 2026-11-30 05:56:39,858 teacher-0 INFO pgkd.teacher: batch 9",
                 "(EngineCore pid=18767) INFO 11-30 05:56:39 [core.py:1454] [shutdown] EngineCore: trigger",
                 "[2026-11-30 05:52:31,911 E 18304 18304] core_worker.cc:2465: Actor teacher-0 with class name"]
    own = ["2026-11-30 06:53:04,488 bus.server INFO: embedded redis-server on 127.0.0.1:38055",
           "[   10s] teacher(generating) generated 0 kept 0 (0 tok/s) | no scores yet | best -",
           "best student student-ngram-0@v2: validation macro-F1 0.6533, test macro-F1 0.7622"]
    assert foreign_lines("\n".join(ray_lines + own)) == ray_lines


MINILM_STUDENT = "  - name: minilm\n    min_new_examples: 4\n"
NGRAM_STUDENT = "  - name: ngram\n    kind: ngram\n    min_new_examples: 4\n"


def few_batches(max_batches: int, student: str) -> str:
    """Config lines for a teacher of a few short batches (minutes on 2 cores) and one student."""
    return f"""
teacher:
  classes_per_batch: 2
  examples_per_class: 6
  max_new_tokens: 32
  max_batches: {max_batches}
students:
{student}"""


@pytest.fixture(scope="module", autouse=True)
def demo_data():
    from pgkd.basics.demo_dataset import main

    main()


def test_full_loop_generates_trains_scores_and_stops_by_itself(tmp_path):
    config = write_config(tmp_path, few_batches(3, MINILM_STUDENT))
    started = time.time()
    proc = subprocess.run(PGKD + ["run", str(config), "--run-id", "itest-1"], env=ENV, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / "runs" / "itest-1"
    assert foreign_lines(proc.stdout + proc.stderr) == []  # the terminal is pgkd's; Ray and vLLM write to files
    assert "live status: pgkd status itest-1" in proc.stdout.splitlines()[1]
    assert re.search(r"INFO \d\d-\d\d .*\[", (run_dir / "logs" / "teacher-0.log").read_text())  # vLLM's lines
    report = json.loads((run_dir / "report.json").read_text())
    print(f"integration run took {time.time() - started:.0f}s; stopped by {report['stopped_by']}")

    assert report["stopped_by"]["reason"] in {"teacher_done", "patience", "max_versions"}
    teacher = report["teacher"]["totals"]
    assert teacher["generated"] >= 12 and teacher["completion_tokens"] > 0 and teacher["batches"] >= 1
    assert report["examples"]["generated"] == teacher["kept"] > 0
    versions = report["versions"]
    assert versions[0]["version"] == 0 and versions[0]["generated_seen"] == 0  # seeds-only student was scored
    assert any(v["generated_seen"] > 0 for v in versions)  # and a student trained on teacher data
    best = report["best_student"]
    assert 0 < best["test"]["macro_f1"] <= 1 and best["validation"]["macro_f1"] == max(v["macro_f1"] for v in versions)

    rows = [json.loads(line) for line in (run_dir / "data" / "examples.jsonl").open()]
    generated = [r for r in rows if r["source"] == "generated"]
    assert len(generated) == report["examples"]["generated"]
    audit = report["teacher_audit"]  # the teacher was audited first, and the run followed its decisions
    assert audit["texts"] == 30 and audit["student_accuracy"] is not None and audit["decisions"]
    assert all(r["teacher"].startswith("teacher-0:") and bool(r["soft_label"]) == audit["soft_labels"]
               for r in generated)
    assert "teacher audit on 30 steering texts" in proc.stdout and "## Teacher audit" in (run_dir / "report.md").read_text()
    assert (run_dir / "report.md").read_text().count("| student-minilm-0 |") == len(versions)
    assert (run_dir / "learning_curve.png").stat().st_size > 1000
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == len(versions)

    predicted = subprocess.run(PGKD + ["predict", str(run_dir / "best_student"), "I lost my card on the bus"],
                               env=ENV, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert json.loads(predicted.stdout.splitlines()[0])["label"] in {l["name"] for l in
                                                                      json.loads((REPO / "examples/demo_bank/labels.json").read_text())}


def test_status_and_stop_on_a_live_run(tmp_path, reap_servers):
    """No teacher here (replicas 0), so the run only ends when told: pgkd stop, and it still writes its report."""
    config = write_config(tmp_path, "teacher:\n  replicas: 0\n")
    runs = tmp_path / "runs"
    proc = subprocess.Popen(PGKD + ["run", str(config), "--run-id", "itest-2"], env=ENV, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status = wait_for_scored_version(runs)
        assert "student-minilm-0: " in status and "macro-F1" in status and "queues:" in status
        stop = subprocess.run(PGKD + ["stop", "itest-2", "--runs-dir", str(runs)], env=ENV, capture_output=True,
                              text=True, timeout=60)
        assert "stop requested" in stop.stdout
        out, _ = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    report = json.loads((runs / "itest-2" / "report.json").read_text())
    assert report["stopped_by"]["reason"] == "user" and report["best_student"]["version"] == 0


def wait_for_scored_version(runs: Path, version: int = 0, timeout: float = 240, run_id: str = "itest-2",
                            student: str = "") -> str:
    """`pgkd status` once some student (or the named one) has a scored version >= version."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (runs / run_id / "run.json").exists():
            status = subprocess.run(PGKD + ["status", run_id, "--runs-dir", str(runs)], env=ENV,
                                    capture_output=True, text=True, timeout=60)
            scored = [int(v) for v in re.findall(rf"{re.escape(student)}\S*: .*v(\d+) macro-F1", status.stdout)]
            if scored and max(scored) >= version:
                return status.stdout
        time.sleep(2)
    raise AssertionError(f"no scored version >= {version} of '{student or 'any student'}' within the timeout")


def test_bad_dataset_is_refused_before_anything_starts(tmp_path):
    data = tmp_path / "bad"
    data.mkdir()
    (data / "labels.json").write_text('["a", "b"]')
    for split in ("train", "validation"):
        (data / f"{split}.jsonl").write_text('{"text": "x", "label": "a"}\n')
    (data / "test.jsonl").write_text('{"text": "x", "label": "a"}\n{"text": "y", "label": "c"}\n')
    config = tmp_path / "bad.yaml"
    config.write_text(f"dataset:\n  path: {data}\nruns_dir: {tmp_path / 'runs'}\n")
    proc = subprocess.run(PGKD + ["run", str(config)], env=ENV, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert f"{data / 'test.jsonl'}:2: field 'label': unknown label 'c'" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_killed_student_engine_and_redis_recover_and_lose_nothing(tmp_path, reap_servers):
    """Mid-run, SIGKILL the student's process, the evaluator's, the teacher's vLLM EngineCore and the embedded
    redis-server. Ray restarts the student (it resumes from its last published checkpoint and the acked examples)
    and the evaluator (it replays the reports); the engine watchdog ends the hung teacher and Ray restarts it with
    a fresh engine; the driver restarts Redis from its append-only file. The run ends by itself and every
    generated example is trained on or dropped with a reason."""
    import psutil

    from pgkd.bus.client import Bus

    config = write_config(tmp_path, few_batches(4, NGRAM_STUDENT))
    runs = tmp_path / "runs"
    # A generous budget: the restarted teacher loads a second engine (2.5 min on a loaded 2-core machine).
    # engine_process separate: vLLM's own engine process, which can die on its own (in-process, it is the actor)
    proc = subprocess.Popen(PGKD + ["run", str(config), "--run-id", "itest-2", "--set", "loop.patience=50",
                                    "--set", "loop.time_budget_s=1200", "--set", "teacher.engine_process=separate"],
                            env=ENV,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_scored_version(runs, version=1, timeout=600)
        url = json.loads((runs / "itest-2" / "run.json").read_text())["bus_url"]
        bus, port = Bus(url, "itest-2"), url.rsplit(":", 1)[1].split("/")[0]
        pid_of = lambda actor: int(bus.get_fields(f"status:{actor}")["pid"])  # noqa: E731
        student, teacher = psutil.Process(pid_of("student-ngram-0")), psutil.Process(pid_of("teacher-0"))
        evaluator = psutil.Process(pid_of("evaluator"))
        engines = [p for p in teacher.children(recursive=True) if p.name().startswith("VLLM::EngineCore")]
        redis_server = [p for p in psutil.process_iter(["name", "cmdline"])  # its title: redis-server HOST:PORT
                        if (p.info["name"] or "").startswith("redis-server")
                        and f":{port}" in " ".join(p.info["cmdline"] or [])]
        assert len(engines) == 1 and len(redis_server) == 1
        for victim in [student, evaluator] + engines + redis_server:
            victim.kill()
        out, _ = proc.communicate(timeout=900)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    report = json.loads((runs / "itest-2" / "report.json").read_text())
    versions = [c["version"] for c in report["checkpoints"]]
    assert versions == sorted(set(versions)) and versions[-1] >= 2, versions  # went on after the kill, no repeats
    assert [v["version"] for v in report["versions"]] == versions  # every version scored, none twice
    last, totals = report["checkpoints"][-1], report["teacher"]["totals"]
    assert last["examples_seen"] == report["dataset"]["seeds"] + report["examples"]["teacher_total"]
    assert report["examples"]["teacher_total"] == totals["kept"]
    assert totals["generated"] == totals["kept"] + sum(report["teacher"]["dropped"].values())
    assert report["stopped_by"]["reason"] == "teacher_done"  # the budget was spent, nothing cut it short
    assert totals["batches"] >= 3  # max_batches 4, less the one in flight when the engine died
    teacher_log = (runs / "itest-2" / "logs" / "teacher-0.jsonl").read_text()
    assert "died; exiting so a fresh teacher replaces this one" in teacher_log
    assert teacher_log.count("engine ready") == 2  # the first engine, and the restarted actor's
    assert "embedded redis-server exited" in out
    assert "replayed" in (runs / "itest-2" / "logs" / "evaluator.jsonl").read_text()


def test_simulated_teacher_run_spends_its_reservoir_once_and_says_so_everywhere(tmp_path):
    """`teacher.backend: simulated` through the real actors, bus and evaluator: every reservoir text is written
    once, the run ends when the reservoir is spent, the best student is chosen on the held-out selection texts,
    and the report says the teacher was simulated."""
    extra = """
dataset:
  path: {data}
  seeds_per_class: 2
  max_validation: 60
teacher:
  backend: simulated
  classes_per_batch: 2
  examples_per_class: 2
  max_batches: 30
  error_rate: 0.1
students:
  - name: ngram
    kind: ngram
    min_new_examples: 4
redis:
  archive_every_s: 0.3
""".format(data=REPO / "examples" / "demo_bank")
    config = write_config(tmp_path, "")
    text = config.read_text()
    text = text[:text.index("dataset:")] + text[text.index("loop:"):] + extra
    config.write_text(text.replace("dashboard: false", "dashboard: true"))  # as `pgkd demo` starts it
    proc = subprocess.run(PGKD + ["run", str(config), "--run-id", "sim-1"], env=ENV, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert foreign_lines(proc.stdout + proc.stderr) == []
    first = proc.stdout.splitlines()[:3]  # the run line, then where to watch it
    assert any(re.match(r"dashboard: http://127\.0\.0\.1:\d+ \(Ray token authentication on \(the dashboard asks for "
                        r"the token in .*auth_token\)\) · live status: pgkd status sim-1", line) for line in first)
    run_dir = tmp_path / "runs" / "sim-1"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["simulated_teacher"].startswith("simulated teacher (error_rate 0.1")
    markdown = (run_dir / "report.md").read_text()
    assert "**Teacher: simulated teacher" in markdown and "per busy second" not in markdown
    chosen = [line for line in markdown.splitlines() if line.startswith("Chosen")]
    assert len(chosen) == 1 and "(rule: each student's newest version against seeds-only on all" in chosen[0]
    rows = [json.loads(line) for line in (run_dir / "data" / "examples.jsonl").read_text().splitlines()]
    written = [r for r in rows if r["source"] != "seed"]
    seeds = {r["text"] for r in rows if r["source"] == "seed"}
    assert len(written) == 30 - len(seeds) and len({r["text"] for r in written}) == len(written)
    assert all(r["teacher"] == "teacher-0:simulated" for r in written) and not seeds & {r["text"] for r in written}
    assert report["stopped_by"]["reason"] in {"teacher_done", "patience", "max_versions"}
    assert report["dataset"]["selection"] > 0 and "selection" in report["best_student"]
    assert report["best_student"]["choice"]["reason"]
    archived = (run_dir / "data" / "examples.stream.jsonl").read_text().splitlines()
    assert report["bus"]["streams"]["examples"] < len(archived)  # trained-on batches left Redis for the archive


def test_a_chat_teacher_with_structured_replies_runs_end_to_end_in_process(tmp_path):
    """The embedded model in the chat format (pgkd's Gemma chat template), its generation held to a JSON schema
    by vLLM's guided decoding: audited, generating, labelling and trained on like a completion teacher."""
    chat = "teacher:\n  prompt_format: chat\n  examples_per_request: 3\n"
    config = write_config(tmp_path, few_batches(2, NGRAM_STUDENT).replace("teacher:\n", chat))
    proc = subprocess.run(PGKD + ["run", str(config), "--run-id", "itest-chat"], env=ENV, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert foreign_lines(proc.stdout + proc.stderr) == []
    report = json.loads((tmp_path / "runs" / "itest-chat" / "report.json").read_text())
    audit = report["teacher_audit"]
    assert (audit["prompt_format"], audit["structured"]) == ("chat", True) and audit["texts"] == 30
    totals = report["teacher"]["totals"]
    assert totals["batches"] >= 1 and totals["generated"] >= 12 and totals.get("failed_requests", 0) == 0
    dropped = sum(v for k, v in totals.items() if k.startswith("dropped_"))
    assert totals["generated"] == totals["kept"] + dropped  # a reply that broke its schema counts what it was asked
    assert "chat prompts, structured generation" in (tmp_path / "runs" / "itest-chat" / "report.md").read_text()


def test_audit_command_prints_the_audit_and_what_a_run_would_decide(tmp_path):
    """`pgkd audit CONFIG`: the real engine labels the audit texts in this process, next to a seeds-only student
    trained here; the terminal gets pgkd's lines only (the engine's go to a log file)."""
    config = write_config(tmp_path, few_batches(1, NGRAM_STUDENT))
    proc = subprocess.run(PGKD + ["audit", str(config), "--json", str(tmp_path / "audit.json")], env=ENV, cwd=REPO,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert foreign_lines(out) == [], foreign_lines(out)[:5]
    assert "teacher audit on 30 steering texts (each among 4 candidate labels)" in out
    assert "what a run would decide:" in out and "min_confidence" in out
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["texts"] == 30 and 0 <= audit["accuracy"] <= 1 and audit["student_accuracy"] is not None
    logs = list((tmp_path / "runs" / "audits").glob("itest-*.log"))
    assert len(logs) == 1 and "Initializing a V1 LLM engine" in logs[0].read_text()
