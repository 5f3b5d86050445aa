"""Scaling plans, retire flags, stop history, resume guards, and the bus riding out a Redis restart (real server)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pgkd.basics.errors import InputError
from pgkd.bus.control import clear_stop, request_stop, stop_history, stop_requested
from pgkd.bus.messages import ScaleRequest
from pgkd.bus.roster import actor_names, is_retired, register_actor, retire, retired, unretire
from pgkd.evaluator.stopping import RunStopping
from pgkd.scaling import check_request, plan_scale


def test_growing_a_pool_takes_the_lowest_free_replica_numbers():
    plan = plan_scale({"teacher": [0, 2], "minilm": [0]}, ScaleRequest(teachers=4, students={"minilm": 2}))
    assert sorted(plan.launch) == [("minilm", 1), ("teacher", 1), ("teacher", 3)] and plan.retire == []


def test_shrinking_a_pool_retires_the_highest_replicas_first():
    plan = plan_scale({"teacher": [0, 1, 2], "ngram": [0, 1]}, ScaleRequest(teachers=1, students={"ngram": 0}))
    assert [r for r in plan.retire if r[0] == "teacher"] == [("teacher", 2), ("teacher", 1)]
    assert [r for r in plan.retire if r[0] == "ngram"] == [("ngram", 1), ("ngram", 0)] and plan.launch == []


def test_a_pool_not_named_in_the_request_is_left_alone():
    assert plan_scale({"teacher": [0], "minilm": [0, 1]}, ScaleRequest(students={"minilm": 2})).describe() == \
        "nothing to change"


def test_scale_requests_are_checked_against_the_configured_students():
    with pytest.raises(InputError, match="no student named \\['bert'\\]"):
        check_request(ScaleRequest(students={"bert": 1}), ["minilm"])
    with pytest.raises(InputError, match="nothing to scale"):
        check_request(ScaleRequest(), ["minilm"])
    with pytest.raises(ValueError):
        ScaleRequest(teachers=-1)


def test_cli_student_counts(tmp_path):
    from pgkd.cli import parse_student_counts

    assert parse_student_counts(["2", "ngram=0"], ["minilm", "ngram"]) == {"minilm": 2, "ngram": 0}
    with pytest.raises(InputError, match="--students"):
        parse_student_counts(["two"], ["minilm"])


def test_retire_flags_and_the_actor_registry(bus):
    register_actor(bus, "teacher", "teacher-10")
    register_actor(bus, "teacher", "teacher-2")
    assert actor_names(bus, "teacher", ["teacher-0"]) == ["teacher-0", "teacher-2", "teacher-10"]
    retire(bus, "teacher-2")
    assert is_retired(bus, "teacher-2") and retired(bus) == {"teacher-2"}
    unretire(bus, "teacher-2")
    assert not is_retired(bus, "teacher-2")


def test_clearing_a_stop_keeps_it_in_the_history(bus):
    assert clear_stop(bus) is None
    request_stop(bus, "patience", "first session")
    bus.set_fields("flags", {"teachers_done": 1})
    cleared = clear_stop(bus)
    assert cleared.reason == "patience" and stop_requested(bus) is None and bus.get_fields("flags") == {}
    request_stop(bus, "user", "second session")
    clear_stop(bus)
    assert [s.detail for s in stop_history(bus)] == ["first session", "second session"]


def test_a_retired_student_no_longer_holds_the_run_open():
    stopping = RunStopping(patience=1, min_delta=0.0, max_versions=20, students=["a", "b"])
    stopping.update("a", 0.5)
    stopping.update("a", 0.4)  # a is out of patience; b never reported
    assert stopping.reason() is None
    stopping.retire("b")
    assert stopping.reason() == "patience"
    stopping.update("b", 0.9)  # a late report of a retired student counts as a version, not for patience
    assert stopping.seen == 3 and "b" not in stopping.per_student
    stopping.unretire("b")
    stopping.update("b", 0.9)
    assert "b" in stopping.per_student


def test_resume_refuses_a_run_whose_driver_still_runs(tmp_path):
    from pgkd.runs import driver_alive, refuse_if_live

    fake_driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "pgkd"])
    try:
        info = {"driver_pid": fake_driver.pid}
        deadline = time.monotonic() + 10
        while not driver_alive(info) and time.monotonic() < deadline:  # until the child has exec'd
            time.sleep(0.05)
        assert driver_alive(info)
        with pytest.raises(InputError, match="still driven by process"):
            refuse_if_live("r1", info)
    finally:
        fake_driver.kill()
        fake_driver.wait()
    assert not driver_alive(info)
    refuse_if_live("r1", info)


def test_the_bus_rides_out_a_killed_redis_server_and_loses_nothing(tmp_path):
    """SIGKILL the server: keep_alive restarts it on the same port; appendfsync always keeps every acked write."""
    from pgkd.bus.client import Bus
    from pgkd.bus.messages import Stop
    from pgkd.bus.server import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis").start().keep_alive(every_s=0.2)
    try:
        bus = Bus(server.url, "outage", retry_seconds=30)
        for i in range(20):
            bus.publish("events", Stop(reason="user", detail=str(i)))
        os.kill(server.process.pid, signal.SIGKILL)
        started = time.monotonic()
        bus.publish("events", Stop(reason="user", detail="after"))  # retried until the server is back
        assert time.monotonic() - started < 20 and bus.reconnects >= 1 and server.restarts == 1
        assert [s.detail for s in bus.read_all("events", Stop)] == [str(i) for i in range(20)] + ["after"]
    finally:
        server.stop()


def test_a_stopped_server_is_not_restarted(tmp_path):
    from pgkd.bus.server import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis").start().keep_alive(every_s=0.1)
    server.stop()
    time.sleep(0.5)
    assert server.restarts == 0 and server.process is None


def test_the_engine_watchdog_fires_when_an_engine_process_dies():
    from pgkd.teacher.backends.engine_watchdog import EngineWatchdog

    fired = []
    engine, watchdog = EngineWatchdog.around(
        lambda: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]),
        on_death=lambda: fired.append(time.monotonic()), every_s=0.1)
    assert watchdog.pids == {engine.pid}
    time.sleep(0.3)
    assert not fired
    engine.kill()
    engine.wait()
    deadline = time.monotonic() + 5
    while not fired and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fired and watchdog.dead == {engine.pid}


def test_the_engine_watchdog_stays_quiet_on_a_deliberate_shutdown():
    from pgkd.teacher.backends.engine_watchdog import EngineWatchdog

    fired = []
    engine, watchdog = EngineWatchdog.around(
        lambda: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]),
        on_death=lambda: fired.append(1), every_s=0.1)
    watchdog.close()
    engine.kill()
    engine.wait()
    time.sleep(0.4)
    assert not fired


def test_actor_logs_are_json_lines(tmp_path):
    import logging

    from pgkd.actors.common import setup_logging

    setup_logging("teacher-7", str(tmp_path))
    logging.getLogger("pgkd.teacher").info("batch %d done", 3)
    for handler in logging.getLogger().handlers:
        handler.flush()
    entry = json.loads((tmp_path / "teacher-7.jsonl").read_text().splitlines()[-1])
    assert entry["actor"] == "teacher-7" and entry["message"] == "batch 3 done" and entry["level"] == "INFO"
    logging.getLogger().handlers = [h for h in logging.getLogger().handlers
                                    if not isinstance(h, logging.FileHandler)]


def test_the_terminal_bar_shows_the_live_numbers():
    import io

    from pgkd.terminal_bar import TerminalBar

    out = io.StringIO()
    bar = TerminalBar(600, enabled=True, file=out)
    bar.update(42, {"teacher": {"generated": 24, "kept": 16}, "versions_scored": 3, "best": {"macro_f1": 0.9671}})
    bar.close()
    assert "42/600s budget, generated" in out.getvalue() and "generated 24 kept 16 | versions 3 | best 0.967" in out.getvalue()
    assert not TerminalBar(600, enabled=False).active


def test_resume_reopens_a_stopped_embedded_bus_from_its_append_only_file(tmp_path):
    from pgkd.config import validate_config
    from pgkd.bus.client import Bus
    from pgkd.bus.messages import Stop
    from pgkd.bus.server import EmbeddedRedis
    from pgkd.resuming import reopen_bus

    config = validate_config({"dataset": {"path": str(tmp_path)}})
    first = EmbeddedRedis(tmp_path / "redis").start()
    Bus(first.url, "r1").publish("events", Stop(reason="user", detail="kept"))
    info = {"bus_url": first.url, "embedded_redis": True}
    adopted_bus, adopted = reopen_bus(config, tmp_path, "r1", info)  # still up: adopted, not started twice
    assert adopted.attached and adopted.process is None and adopted_bus.url == first.url
    first.stop()
    bus, restarted = reopen_bus(config, tmp_path, "r1", info)  # down: started from its data folder
    try:
        assert restarted.process is not None and restarted.password == first.password
        assert [s.detail for s in bus.read_all("events", Stop)] == ["kept"]
    finally:
        restarted.stop()


def test_stop_on_a_crashed_run_also_stops_its_orphaned_embedded_redis(tmp_path, capsys):
    from pgkd.bus.server import EmbeddedRedis
    from pgkd.cli import main
    from pgkd.runs import write_run_file

    run_dir = tmp_path / "runs" / "crashed"
    run_dir.mkdir(parents=True)
    server = EmbeddedRedis(run_dir / "redis").start()
    try:
        write_run_file(run_dir, "crashed", server.url, embedded=True)
        info = json.loads((run_dir / "run.json").read_text())
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        (run_dir / "run.json").write_text(json.dumps(info | {"driver_pid": dead.pid}))
        assert main(["stop", "crashed", "--runs-dir", str(tmp_path / "runs")]) == 0
        assert "its driver is gone: stopped the run's embedded Redis" in capsys.readouterr().out
        server.process.wait(10)
    finally:
        server.stop()


def test_stop_on_a_crashed_run_whose_bus_went_with_its_driver_says_so(tmp_path, capsys):
    from pgkd.bus.server import EmbeddedRedis, free_port
    from pgkd.cli import main
    from pgkd.runs import write_run_file

    run_dir = tmp_path / "runs" / "crashed"
    run_dir.mkdir(parents=True)
    url = EmbeddedRedis(run_dir / "redis", port=free_port()).url  # never started: nothing listens there
    write_run_file(run_dir, "crashed", url, embedded=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps(info | {"driver_pid": dead.pid}))
    assert main(["stop", "crashed", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "is not live: its driver and its bus are gone" in capsys.readouterr().out


def test_a_resumed_session_relaunches_the_configured_names_and_retires_the_rest(bus):
    from pgkd.bus.roster import restart_roster

    for role, name in [("teacher", "teacher-0"), ("teacher", "teacher-1"), ("student", "student-m-0"),
                       ("student", "student-m-1")]:
        register_actor(bus, role, name)
    retire(bus, "teacher-0")  # scaled down in the first session, configured again now
    restart_roster(bus, {"teacher-0", "student-m-0"})
    assert retired(bus) == {"teacher-1", "student-m-1"}


def test_credentials_in_urls_never_reach_the_saved_config_and_resume_asks_for_them(tmp_path):
    """A user:pass@ in teacher.base_url used to be written to config.yaml and report.json."""
    from pgkd.basics.errors import InputError
    from pgkd.config import load_config
    from pgkd.driver import save_config
    from pgkd.resuming import refuse_redacted

    (tmp_path / "run.yaml").write_text(f"dataset: {{path: {tmp_path}}}\nteacher:\n  backend: openai\n"
                                       f"  base_url: https://user:s3cret@gateway.example/v1?api_key=k3y\n"
                                       f"redis: {{url: 'redis://:pw@127.0.0.1:6379/0'}}\n")
    config = load_config(tmp_path / "run.yaml")
    save_config(config, tmp_path / "config.yaml")
    saved = (tmp_path / "config.yaml").read_text()
    assert "s3cret" not in saved and "k3y" not in saved and "pw@" not in saved and "user" not in saved
    with pytest.raises(InputError, match="--set teacher.base_url="):
        refuse_redacted(load_config(tmp_path / "config.yaml"), tmp_path / "config.yaml")
    refuse_redacted(load_config(tmp_path / "config.yaml", ["teacher.base_url=https://gateway.example/v1"]),
                    tmp_path / "config.yaml")  # given again: accepted (the redis URL comes from run.json)
