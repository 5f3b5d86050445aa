"""Bad input of every kind, through the command line in this process: each is refused with `pgkd: error:`,
the file, line and field where there are some, exit code 2, no traceback, and nothing left behind (no new
process, nothing under runs/). No engine and no Ray: every case stops before either would start."""
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psutil
import pytest

from pgkd.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config(tmp_path, data, extra: str = "") -> str:
    """A valid config (lines 1-3) plus `extra` from line 4 on."""
    path = tmp_path / "run.yaml"
    path.write_text(f"dataset:\n  path: {data}\nruns_dir: {tmp_path / 'runs'}\n" + extra)
    return str(path)


def run(tmp_path, data, extra: str, *more: str) -> list[str]:
    return ["run", config(tmp_path, data, extra), *more]


def saved_student(tmp_path, meta) -> str:
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "student.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return str(folder)


def run_folder(tmp_path, run_json: str | None, best_meta=None) -> str:
    folder = tmp_path / "runs" / "r1"
    folder.mkdir(parents=True)
    if run_json is not None:
        (folder / "run.json").write_text(run_json)
    if best_meta is not None:
        (folder / "best_student").mkdir()
        (folder / "best_student" / "student.json").write_text(json.dumps(best_meta))
    return str(tmp_path / "runs")


def edit(path, text: str | bytes) -> None:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def line(text: str, label: str) -> str:
    return json.dumps({"text": text, "label": label}) + "\n"


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
NGRAM_META = {"kind": "ngram", "labels": ["card", "transfer"], "feature_scale": 10.0, "buckets": 16, "word_n": 1,
              "char_n": 0}

# name -> (argv from (tmp_path, dataset folder), what the message must say: file:line, field, words)
CASES = {
    # config: names against the registries, paths, ranges, cross-field rules, YAML itself
    "unknown backend": (lambda t, d: run(t, d, "teacher:\n  backend: vlm\n"),
                        ["run.yaml:5: field 'teacher.backend'", "known: openai, simulated, vllm"]),
    "unknown kind on the second student": (
        lambda t, d: run(t, d, "students:\n  - name: a\n    kind: ngram\n  - name: b\n    kind: ngrma\n"),
        ["run.yaml:8: field 'students.1.kind'", "unknown student kind; known: encoder,"]),
    "a setting of another student kind": (
        lambda t, d: run(t, d, "students:\n  - name: a\n    kind: ngram\n    layer: gin\n"),
        ["run.yaml:7: field 'students.0.layer'", "not a setting of kind 'ngram'"]),
    "teacher model folder missing": (lambda t, d: run(t, d, "teacher:\n  model: ./no-such-model\n"),
                                     ["run.yaml:5: field 'teacher.model'", "no model folder at ./no-such-model"]),
    "unknown embedded teacher": (lambda t, d: run(t, d, "teacher:\n  model: embedded:gemma9\n"),
                                 ["run.yaml:5: field 'teacher.model'", "unknown embedded model"]),
    "hub model not cached offline": (lambda t, d: run(t, d, "teacher:\n  model: nobody/no-such-model-xyz\n"),
                                     ["run.yaml:5: field 'teacher.model'", "not in the Hugging Face cache"]),
    "student encoder folder missing": (lambda t, d: run(t, d, "students:\n  - model: /no/such/encoder\n"),
                                       ["run.yaml:5: field 'students.0.model'", "no model folder"]),
    "templates folder missing": (lambda t, d: run(t, d, "teacher:\n  templates_dir: no-templates\n"),
                                 ["run.yaml:5: field 'teacher.templates_dir'", "no folder at"]),
    "min_words above max_words": (lambda t, d: run(t, d, "teacher:\n  min_words: 9\n  max_words: 5\n"),
                                  ["run.yaml:4: field 'teacher'", "min_words (9) is above max_words (5)"]),
    "number out of range": (lambda t, d: run(t, d, "loop:\n  time_budget_s: 0\n"),
                            ["run.yaml:5: field 'loop.time_budget_s'", "greater than 0"]),
    "duplicate key": (lambda t, d: run(t, d, "teacher:\n  replicas: 1\n  replicas: 2\n"),
                      ["run.yaml:6: field 'replicas'", "given twice", "first on line 5"]),
    "alias bomb": (lambda t, d: run(t, d, BOMB), ["run.yaml:", "expands to more than 100000"]),
    "config not UTF-8": (lambda t, d: (edit(t / "bad.yaml", b"dataset:\n  path: x\nname: caf\xe9\n"),
                                       ["run", str(t / "bad.yaml")])[1], ["bad.yaml:3", "not UTF-8"]),
    "unsafe run name": (lambda t, d: run(t, d, "name: ../outside\n"),
                        ["run.yaml:4: field 'name'", "not a safe name"]),
    "runs_dir is a file": (lambda t, d: (edit(t / "afile", "x"), run(t, d, "", "--set", f"runs_dir={t / 'afile'}"))[1],
                           ["field 'runs_dir'", "is not a folder"]),
    "malformed redis url": (lambda t, d: run(t, d, "redis:\n  url: redis://:pw@127.0.0.1:notaport/0\n"),
                            ["run.yaml:5: field 'redis.url'", "malformed URL"]),
    "endpoint url without scheme": (
        lambda t, d: run(t, d, "teacher:\n  backend: openai\n  base_url: 127.0.0.1:8000/v1\n"),
        ["run.yaml:6: field 'teacher.base_url'", "http(s)://host:port/v1"]),
    "a setting of another backend": (
        lambda t, d: run(t, d, "teacher:\n  backend: openai\n  dtype: float32\n"),
        ["run.yaml:6: field 'teacher.dtype'", "not a setting of backend 'openai' (it is one of backend vllm)"]),
    "a misspelt setting": (
        lambda t, d: run(t, d, "teacher:\n  tempreature: 1.0\n"),
        ["run.yaml:5: field 'teacher.tempreature'", "not a setting of backend 'vllm' (no such setting)"]),
    # command-line arguments
    "--set without =": (lambda t, d: run(t, d, "", "--set", "teacher.replicas"), ["field 'teacher.replicas'",
                                                                                  "dotted.key=value"]),
    "--set value not YAML": (lambda t, d: run(t, d, "", "--set", "teacher.seed=[1, 2"),
                             ["field 'teacher.seed'", "not valid YAML"]),
    "--set into a number": (lambda t, d: run(t, d, "", "--set", "loop.patience.x=1"),
                            ["field 'loop.patience'", "Input should be a valid integer"]),
    "--set into a missing list item": (lambda t, d: run(t, d, "", "--set", "students.5.alpha=0.3"),
                                       ["field 'students.5.alpha=0.3'", "IndexError"]),
    "--set wrong type": (lambda t, d: run(t, d, "", "--set", "teacher.replicas=many"),
                         ["field 'teacher.replicas'", "valid integer"]),
    "--run-id with ..": (lambda t, d: run(t, d, "", "--run-id", "../escaped"), ["field '--run-id'", "safe name"]),
    "--run-id absolute": (lambda t, d: run(t, d, "", "--run-id", str(t / "abs")), ["field '--run-id'", "safe name"]),
    "scale to negative teachers": (lambda t, d: ["scale", "r1", "--teachers", "-1", "--runs-dir", str(t)],
                                   ["field '--teachers'", "0 or more"]),
    "scale with a bad count": (lambda t, d: ["scale", "r1", "--students", "a=two", "--runs-dir", str(t)],
                               ["field '--students'", "whole number"]),
    # dataset
    "dataset not UTF-8": (lambda t, d: (edit(d / "train.jsonl", line("ok card", "card").encode() + b'{"text": "\xff"}\n'),
                                        run(t, d, ""))[1], ["train.jsonl:2", "not UTF-8"]),
    "labels.json not UTF-8": (lambda t, d: (edit(d / "labels.json", b'["card", "tr\xe4nsfer"]'), run(t, d, ""))[1],
                              ["labels.json:1", "not UTF-8"]),
    "text too long": (lambda t, d: (edit(d / "test.jsonl", line("x" * 10_001, "card")), run(t, d, ""))[1],
                      ["test.jsonl:1: field 'text'", "10001 characters"]),
    "class without validation text": (lambda t, d: (edit(d / "validation.jsonl", line("card late", "card")),
                                                    run(t, d, ""))[1],
                                      ["validation.jsonl", "labels with no validation text: ['transfer']"]),
    "unknown label": (lambda t, d: (edit(d / "test.jsonl", line("rain today", "weather")), run(t, d, ""))[1],
                      ["test.jsonl:1: field 'label'", "unknown label 'weather'"]),
    "dataset folder missing": (lambda t, d: run(t, t / "nodata", ""), ["nodata", "dataset folder not found"]),
    # saved student folders (pgkd predict)
    "predict: no folder": (lambda t, d: ["predict", str(t / "none"), "hi"], ["none: no such folder"]),
    "predict: a file, not a folder": (lambda t, d: (edit(t / "f", "x"), ["predict", str(t / "f"), "hi"])[1],
                                      ["f: not a folder"]),
    "predict: no student.json": (lambda t, d: ((t / "empty").mkdir(), ["predict", str(t / "empty"), "hi"])[1],
                                 ["student.json", "not a saved pgkd student"]),
    "predict: student.json not JSON": (lambda t, d: ["predict", saved_student(t, "{kind: ngram"), "hi"],
                                       ["student.json:1", "damaged: not valid JSON"]),
    "predict: unknown kind": (lambda t, d: ["predict", saved_student(t, {"kind": "svm", "labels": ["a"]}), "hi"],
                              ["student.json: field 'kind'", "unknown kind 'svm'"]),
    "predict: no labels": (lambda t, d: ["predict", saved_student(t, {"kind": "ngram"}), "hi"],
                           ["student.json: field 'labels'"]),
    "predict: weights missing": (lambda t, d: ["predict", saved_student(t, NGRAM_META), "hi"],
                                 ["student: damaged student folder", "ngram.pt"]),
    # run folders (status, stop, scale, resume, export)
    "status: run.json not JSON": (lambda t, d: ["status", "r1", "--runs-dir", run_folder(t, '{"bus_url": ')],
                                  ["run.json:1", "damaged: not valid JSON"]),
    "stop: run.json without bus_url": (lambda t, d: ["stop", "r1", "--runs-dir", run_folder(t, '{"run_id": "r1"}')],
                                       ["run.json: field 'bus_url'", "damaged"]),
    "scale: run.json with a bad url": (
        lambda t, d: ["scale", "r1", "--teachers", "1", "--runs-dir", run_folder(t, '{"bus_url": "http://x"}')],
        ["run.json: field 'bus_url'", "malformed URL"]),
    "resume: run.json not UTF-8": (
        lambda t, d: ["resume", "r1", "--runs-dir", (run_folder(t, ""), edit(t / "runs/r1/run.json", b"\xff"),
                                                    str(t / "runs"))[2]], ["run.json", "not UTF-8"]),
    "status: runs dir is a file": (lambda t, d: (edit(t / "f", "x"), ["status", "r1", "--runs-dir", str(t / "f")])[1],
                                   ["field '--runs-dir'", "not a folder"]),
    "status: unsafe run id": (lambda t, d: ["status", "../r1", "--runs-dir", str(t)], ["field 'run_id'", "safe name"]),
    "export: run without best student": (
        lambda t, d: ["export", "r1", "--format", "onnx", "--runs-dir", run_folder(t, "{}")],
        ["best_student/student.json", "has the run finished?"]),
    "export: damaged best student": (
        lambda t, d: ["export", "r1", "--format", "onnx", "--runs-dir", run_folder(t, "{}", NGRAM_META)],
        ["best_student: damaged student folder", "ngram.pt"]),
}


@pytest.fixture
def leftovers(tmp_path):
    """Fails the test if it leaves a new child process, or anything under runs/."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    new = [p for p in me.children(recursive=True) if p.pid not in before]
    assert not new, [p.cmdline() for p in new]
    runs = tmp_path / "runs"
    assert not runs.is_dir() or all(p.name == "r1" for p in runs.iterdir()), list(runs.iterdir())
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "abs").exists()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_with_where_and_what(case, tmp_path, tiny_dataset, capsys, leftovers):
    argv_of, expected = CASES[case]
    argv = argv_of(tmp_path, tiny_dataset)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgkd: error: ") and "Traceback" not in err, err
    for part in expected:
        assert part in err, (part, err)


def test_at_least_thirty_kinds():
    assert len(CASES) >= 30


def test_malformed_redis_url_in_the_environment(tmp_path, tiny_dataset, capsys, leftovers, monkeypatch):
    monkeypatch.setenv("PGKD_REDIS_URL", "redis://127.0.0.1:99999/0")
    assert main(run(tmp_path, tiny_dataset, "")) == 2
    assert "field 'PGKD_REDIS_URL (environment)'" in capsys.readouterr().err


def test_unreachable_redis_leaves_no_folder(tmp_path, tiny_dataset, capsys, leftovers):
    """The run folder is made before the bus is tried: a failed start removes it again."""
    argv = run(tmp_path, tiny_dataset, f"redis:\n  url: redis://:secret@127.0.0.1:{free_port()}/0\n"
                                       f"  startup_timeout_s: 0.5\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot reach Redis at redis://***@127.0.0.1" in err and "secret" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unreachable_teacher_endpoint_fails_before_anything_starts(tmp_path, tiny_dataset, capsys, leftovers):
    url = f"http://user:secret@127.0.0.1:{free_port()}/v1"
    argv = run(tmp_path, tiny_dataset, f"teacher:\n  backend: openai\n  model: m\n  base_url: {url}\n"
                                       f"  timeout_s: 2\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "field 'teacher.base_url'" in err and "unreachable within 2s" in err and "ConnectError" in err
    assert "//***@127.0.0.1" in err and "secret" not in err and "user" not in err
    assert not (tmp_path / "runs").exists()


class Endpoint:
    """An OpenAI-style endpoint whose /models answers `status` with `models`."""

    def __init__(self, status: int, models: list[str]):
        body = json.dumps({"data": [{"id": m} for m in models]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"


@pytest.mark.parametrize("status, models, expected", [
    (401, [], ["field 'teacher.api_key_env'", "refused access (HTTP 401)", "$PGKD_TEST_KEY is unset"]),
    (200, ["other-model"], ["field 'teacher.served_model'", "does not serve 'm'", "other-model"]),
    (500, [], ["field 'teacher.base_url'", "answered HTTP 500"]),
])
def test_teacher_endpoint_that_refuses(status, models, expected, tmp_path, tiny_dataset, capsys, leftovers,
                                       monkeypatch):
    monkeypatch.delenv("PGKD_TEST_KEY", raising=False)
    endpoint = Endpoint(status, models)
    try:
        argv = run(tmp_path, tiny_dataset, f"teacher:\n  backend: openai\n  model: m\n"
                                           f"  base_url: {endpoint.url}\n  api_key_env: PGKD_TEST_KEY\n")
        assert main(argv) == 2
    finally:
        endpoint.server.shutdown()
    err = capsys.readouterr().err
    for part in expected:
        assert part in err, (part, err)


def test_verbose_shows_the_traceback(tmp_path, capsys):
    assert main(["--verbose", "predict", str(tmp_path / "none"), "hi"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "pgkd: error:" in err


def test_overlapping_train_and_validation_is_reported(tmp_path, tiny_dataset, caplog):
    from pgkd.config import load_config
    from pgkd.driver import prepare_inputs

    with (tiny_dataset / "train.jsonl").open("a") as out:
        out.write(line("Card still not here!", "card"))  # the validation text, up to case and punctuation
    prepare_inputs(load_config(config(tmp_path, tiny_dataset)))
    assert "1 of 5 seed texts are also validation or test texts" in caplog.text


def test_run_files_are_owner_only_from_creation(tmp_path):
    """With a umask that would make files world-readable, run.json is still 0600 when it first exists."""
    from pgkd.runs import write_run_file

    previous = os.umask(0)
    try:
        (tmp_path / "old.json").write_text("{}")  # the umask is real: a plain write is world-readable here
        write_run_file(tmp_path, "r1", "redis://:pw@127.0.0.1:1/0", True)
    finally:
        os.umask(previous)
    assert (tmp_path / "old.json").stat().st_mode & 0o777 == 0o666
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == 0o600
