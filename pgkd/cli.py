"""pgkd command line: demo, run, status, stop, scale, resume, audit, predict, export. A thin layer over the
Python API (pgkd/api.py) where one exists: parse, call, print, exit code."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from pgkd.basics.errors import BusUnavailable, InputError
from pgkd.basics.logs import quiet_http_clients
from pgkd.session import Interrupted



def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    quiet_http_clients()
    args = parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (InputError, BusUnavailable) as exc:  # a user's mistake, or what only trying could tell: no traceback
        if args.verbose:
            traceback.print_exc()
        print(f"pgkd: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"pgkd: {exc}; everything the run started is stopped", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:  # before the run's own handlers were installed
        print("pgkd: interrupted", file=sys.stderr)
        return 128 + 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgkd", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="stream Ray, vLLM and actor log lines to the terminal (else they go to runs/<id>/logs/); "
                   "tracebacks for errors in the input too")
    verbose = argparse.ArgumentParser(add_help=False)  # also accepted after the command: pgkd run X --verbose
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(required=True, parser_class=lambda **kw: argparse.ArgumentParser(parents=[verbose], **kw))
    demo = sub.add_parser("demo", help="distil on the bundled demo dataset with the embedded defaults")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    demo.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="run a config: pgkd run ray_configs/X.yaml [--set a.b=1]")
    run.add_argument("config")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--run-id")
    run.set_defaults(func=cmd_run)
    for name, func, text in (("status", cmd_status, "live state of a run, from Redis"),
                             ("stop", cmd_stop, "stop a run cleanly (it still writes its report)")):
        one = sub.add_parser(name, help=text)
        one.add_argument("run_id")
        one.add_argument("--runs-dir", default="runs")
        one.set_defaults(func=func)
    scale = sub.add_parser("scale", help="change the number of teachers or students of a live run")
    scale.add_argument("run_id")
    scale.add_argument("--teachers", type=int, metavar="N", help="teacher replicas wanted")
    scale.add_argument("--students", action="append", default=[], metavar="[NAME=]M",
                       help="replicas wanted of a configured student (NAME=M), or M for the first one; repeatable")
    scale.add_argument("--runs-dir", default="runs")
    scale.set_defaults(func=cmd_scale)
    resume = sub.add_parser("resume", help="continue a stopped or crashed run from Redis and its checkpoints")
    resume.add_argument("run_id")
    resume.add_argument("--runs-dir", default="runs")
    resume.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change the saved config, e.g. teacher.max_batches=20 or loop.time_budget_s=600")
    resume.set_defaults(func=cmd_resume)
    audit = sub.add_parser("audit", help="how well the teacher labels validation texts, and what a run would decide")
    audit.add_argument("config")
    audit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    audit.add_argument("--json", help="also write the audit here")
    audit.set_defaults(func=cmd_audit)
    predict = sub.add_parser("predict", help="label texts with an exported student")
    predict.add_argument("student", help="a student folder, e.g. runs/<id>/best_student")
    predict.add_argument("texts", nargs="*", help="texts; none: read one per line from stdin")
    predict.set_defaults(func=cmd_predict)
    export = sub.add_parser("export", help="export a run's best student: hf (a copy), onnx or torchscript")
    export.add_argument("run_id")
    export.add_argument("--format", required=True, choices=["hf", "onnx", "torchscript"])
    export.add_argument("--runs-dir", default="runs")
    export.add_argument("--out", help="destination folder (default: runs/RUN_ID/export-FORMAT)")
    export.set_defaults(func=cmd_export)
    return p


def cmd_demo(args) -> int:
    from pgkd import api

    return exit_code(api.demo(args.set, verbose=args.verbose))


def cmd_run(args) -> int:
    from pgkd import api

    return exit_code(api.run(Path(args.config), args.set, run_id=args.run_id, verbose=args.verbose))


EXIT_NOTHING_SCORED, EXIT_STOPPED_BY_ERROR = 1, 3  # the README's exit codes; 2: bad input, 128 + N: a signal


def exit_code(report: dict) -> int:
    """0: the run ended as planned; 3: it was stopped by an error (every teacher failed, an actor failed for good),
    though its report was written and its best student exported; 1: no student was scored at all."""
    if not report.get("best_student"):
        print("no student was scored; see the report", file=sys.stderr)
        return EXIT_NOTHING_SCORED
    stopped = report.get("stopped_by") or {}
    if stopped.get("reason") == "error":
        print(f"the run was stopped by an error: {stopped.get('detail', '')}; the report and the best student so "
              f"far were written", file=sys.stderr)
        return EXIT_STOPPED_BY_ERROR
    return 0


def cmd_status(args) -> int:
    from pgkd import api
    from pgkd.basics.storage import exists
    from pgkd.live_status import format_status
    from pgkd.place import RunPlace

    live = api.status(args.run_id, args.runs_dir)
    if live is None:
        report = RunPlace.of(args.runs_dir, args.run_id).stored("report.md")
        print(f"run {args.run_id} is not live (its bus is gone)" + (f"; report: {report}" if exists(report) else ""))
    else:
        print(format_status(live))
    return 0


def cmd_stop(args) -> int:
    from pgkd import api

    print(api.stop(args.run_id, args.runs_dir))
    return 0


def cmd_scale(args) -> int:
    from pgkd.config import load_config
    from pgkd.bus.control import CONTROL
    from pgkd.bus.messages import ScaleRequest
    from pgkd.runs import run_bus
    from pgkd.scaling import check_request

    if args.teachers is not None and args.teachers < 0:
        raise InputError(f"expected 0 or more teachers, got {args.teachers}", field="--teachers")
    for value in args.students:  # the arguments before the run: a typo is named first
        split_count(value)
    bus, run_dir, _ = run_bus(args.run_id, args.runs_dir)
    names = [s.name for s in load_config(run_dir / "config.yaml").students]
    request = ScaleRequest(teachers=args.teachers, students=parse_student_counts(args.students, names))
    check_request(request, names)
    bus.publish(CONTROL, request)
    print(f"scale requested: {request.model_dump(exclude={'created'})}; the driver applies it within a second "
          f"(see `pgkd status {args.run_id}`)")
    return 0


def parse_student_counts(values: list[str], names: list[str]) -> dict[str, int]:
    return {name or names[0]: count for name, count in map(split_count, values)}


def split_count(value: str) -> tuple[str, int]:
    """'name=3' -> ('name', 3), '3' -> ('', 3); anything else is refused."""
    name, _, count = value.rpartition("=")
    if not count.isdigit():
        raise InputError(f"expected M or NAME=M with M a whole number, got '{value}'", field="--students")
    return name, int(count)


def cmd_resume(args) -> int:
    from pgkd import api

    return exit_code(api.resume(args.run_id, args.runs_dir, args.set, verbose=args.verbose))


def cmd_audit(args) -> int:
    import time

    from pgkd.config import load_config
    from pgkd.audit import audit_teacher, print_audit
    from pgkd.console import quiet_terminal, terminal

    config = load_config(Path(args.config), args.set)
    from pgkd.basics.storage import is_uri, scratch_root

    logs = scratch_root() if is_uri(str(config.runs_dir)) else Path(config.runs_dir)  # a log is this machine's
    log_file = logs / "audits" / f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    say = lambda text: print(text, file=terminal(), flush=True)  # noqa: E731
    with quiet_terminal(log_file, args.verbose, stdout_too=True):
        audit = audit_teacher(config, say)
        print_audit(audit, say)
        if not args.verbose:
            say(f"engine and library output: {log_file}")
    if args.json:
        Path(args.json).write_text(audit.model_dump_json(indent=2))
    return 0


def cmd_predict(args) -> int:
    from pgkd.basics.storage import is_uri
    from pgkd.student.registry import open_saved_student
    from pgkd.student.saved import check_meta

    if not is_uri(args.student):
        check_meta(args.student)  # before reading stdin: a wrong folder is said at once
    texts = args.texts or [line.strip() for line in sys.stdin if line.strip()]
    if not texts:
        raise InputError("no texts given", field="texts")
    student = open_saved_student(args.student)
    for text, (label, prob) in zip(texts, student.predict(texts)):
        print(json.dumps({"text": text, "label": label, "probability": round(prob, 4)}))
    return 0


def cmd_export(args) -> int:
    import shutil

    from pgkd.basics.storage import fetch_folder as fetched_folder, upload_folder
    from pgkd.cluster.placement import cpu_device
    from pgkd.place import RunPlace
    from pgkd.runs import run_folder
    from pgkd.student.commit import commit_folder
    from pgkd.student.base import STUDENT_KINDS
    from pgkd.student.export import export_student
    from pgkd.student.registry import open_saved_student
    from pgkd.student.saved import META_FILE, check_meta

    place = RunPlace.of(args.runs_dir, args.run_id)
    if place.remote:  # the stored best student, fetched and checked against its manifest
        try:
            source = fetched_folder(place.stored("best_student"))
        except (OSError, ValueError) as exc:
            raise InputError(f"no saved best student here (has the run finished?): {str(exc)[:200]}",
                             file=place.stored("best_student")) from None
        run_dir = place.local
    else:
        run_dir = run_folder(args.run_id, args.runs_dir)
        source = run_dir / "best_student"
    if not (source / META_FILE).is_file():
        raise InputError("no saved best student here (has the run finished?)", file=str(source / META_FILE))
    if check_meta(source)["kind"] not in STUDENT_KINDS.names():
        raise InputError("this student is an export already; export the run's own best student", file=str(source))
    open_saved_student(source, cpu_device())  # a damaged folder is named here, not as a trace from the exporter
    try:
        out = export_student(source, Path(args.out) if args.out else run_dir / f"export-{args.format}", args.format,
                             cpu_device())  # traced on the CPU: the file runs anywhere
    except NotImplementedError as exc:
        raise InputError(str(exc), field="--format") from exc
    if place.remote and not args.out:  # beside the run, where it was asked for
        commit_folder(lambda temp: shutil.copytree(out, temp, dirs_exist_ok=True), out)  # gives it a manifest
        out = upload_folder(out, place.stored(f"export-{args.format}"))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
