import pytest

from pgkd.basics.errors import BusUnavailable
from pgkd.bus.client import DEAD_LETTERS, EXAMPLES, Bus, redact
from pgkd.bus.control import request_stop, stop_requested
from pgkd.bus.messages import Example, ExampleBatch


def batch(n: int, producer="teacher-0") -> ExampleBatch:
    return ExampleBatch(producer=producer, batch=n, examples=[Example(text=f"text {n}", label="a", source="generated")])


def test_publish_and_consume_with_ack(bus):
    bus.ensure_group(EXAMPLES, "g")
    bus.publish(EXAMPLES, batch(1))
    bus.publish(EXAMPLES, batch(2))
    got = bus.read_group(EXAMPLES, "g", "c1", ExampleBatch, count=10, block_ms=100)
    assert [b.batch for _, b in got] == [1, 2]
    assert bus.lag(EXAMPLES, "g") == 2  # delivered, not acked
    bus.ack(EXAMPLES, "g", [entry_id for entry_id, _ in got])
    assert bus.lag(EXAMPLES, "g") == 0
    assert bus.read_group(EXAMPLES, "g", "c1", ExampleBatch, block_ms=50) == []


def test_lag_counts_entries_not_yet_delivered_too(bus):
    """Redis 6.2 (the embedded server) reports no `lag` in XINFO GROUPS: undelivered entries are counted."""
    bus.ensure_group(EXAMPLES, "g")
    for n in range(5):
        bus.publish(EXAMPLES, batch(n))
    assert bus.lag(EXAMPLES, "g") == 5  # none delivered
    got = bus.read_group(EXAMPLES, "g", "c1", ExampleBatch, count=2, block_ms=50)
    assert bus.lag(EXAMPLES, "g") == 5  # 2 delivered unacked + 3 undelivered
    bus.ack(EXAMPLES, "g", [entry_id for entry_id, _ in got])
    assert bus.lag(EXAMPLES, "g") == 3 and bus.backlog(EXAMPLES, "g", 10) == 3


def test_unacked_entries_come_back_after_a_restart(bus):
    bus.ensure_group(EXAMPLES, "g")
    bus.publish(EXAMPLES, batch(1))
    first = bus.read_group(EXAMPLES, "g", "worker", ExampleBatch, block_ms=50)
    restarted = Bus(bus.url, bus.run_id)  # a new process with the same consumer name
    again = restarted.read_group(EXAMPLES, "g", "worker", ExampleBatch, block_ms=50, pending_first=True)
    assert [i for i, _ in again] == [i for i, _ in first]


def test_every_group_sees_every_entry(bus):
    for group in ("student:a", "student:b"):
        bus.ensure_group(EXAMPLES, group)
    bus.publish(EXAMPLES, batch(7))
    for group in ("student:a", "student:b"):
        assert [b.batch for _, b in bus.read_group(EXAMPLES, group, "x", ExampleBatch, block_ms=50)] == [7]


def test_malformed_entry_is_dead_lettered_counted_and_acked(bus):
    bus.ensure_group(EXAMPLES, "g")
    bus.client.xadd(bus.key(EXAMPLES), {"json": '{"producer": "evil", "__import__": "os"}'})
    bus.client.xadd(bus.key(EXAMPLES), {"pickle": "gASV"})
    bus.publish(EXAMPLES, batch(3))
    got = bus.read_group(EXAMPLES, "g", "c", ExampleBatch, count=10, block_ms=50)
    assert [b.batch for _, b in got] == [3]
    assert bus.client.xlen(bus.key(DEAD_LETTERS)) == 2
    assert bus.get_fields("stats:bus")["rejected_examples"] == "2"
    assert bus.pending(EXAMPLES, "g") == 1  # only the good one awaits its ack


def test_first_stop_wins(bus):
    assert stop_requested(bus) is None
    assert request_stop(bus, "patience", "no gain")
    assert not request_stop(bus, "user")
    assert stop_requested(bus).reason == "patience"


def test_unreachable_redis_names_the_url_without_password():
    from pgkd.bus.server import free_port

    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    with pytest.raises(BusUnavailable) as err:
        Bus(url, "r", retry_seconds=0.5).ping()
    assert "127.0.0.1" in str(err.value) and "secret" not in str(err.value)


def test_redact():
    assert redact("rediss://user:pw@host:6380/0") == "rediss://***@host:6380/0"
    assert redact("redis://:pw@host:6379/0") == "redis://***@host:6379/0"
    assert redact("https://u:p@gw.example/v1?api_key=abc&model=m") == "https://***@gw.example/v1?api_key=***&model=m"
    assert redact("s3://bucket/p?endpoint_override=127.0.0.1:9000&scheme=http") == \
        "s3://bucket/p?endpoint_override=127.0.0.1:9000&scheme=http"  # nothing secret: left as it is
    assert redact("redis://host:6379") == "redis://host:6379"


def test_a_server_whose_handle_was_lost_is_still_stopped(tmp_path):
    """A signal raised inside Popen (the driver aborting its start) can lose the process handle after the server
    started: stop() then shuts it down through the protocol, so nothing outlives the run."""
    import psutil

    from pgkd.bus.server import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis").start()
    process = psutil.Process(server.process.pid)
    server.process = None  # as if the assignment never happened
    server.stop()
    process.wait(10)
    assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    with pytest.raises(BusUnavailable):
        Bus(server.url, "gone", retry_seconds=0.5).ping()


def test_embedded_server_binds_loopback_and_needs_the_password(redis_server):
    import redis

    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=redis_server.port).ping()
    info = redis.Redis.from_url(redis_server.url).config_get("bind")
    assert info["bind"] == "127.0.0.1"


def test_a_restarted_consumer_gets_back_what_it_trained_on_and_what_it_held(bus):
    """A student that died after publishing a version (acked) and while holding newer entries (pending):
    read_acked gives the first, read_own_pending all of the second, however many there are."""
    bus.ensure_group(EXAMPLES, "student:s")
    for i in range(3):
        bus.publish(EXAMPLES, batch(i))
    for i in range(600):
        bus.publish(EXAMPLES, batch(100 + i))
    trained = bus.read_group(EXAMPLES, "student:s", "s-0", ExampleBatch, count=3, pending_first=False)
    bus.ack(EXAMPLES, "student:s", [entry_id for entry_id, _ in trained])
    while bus.read_group(EXAMPLES, "student:s", "s-0", ExampleBatch, count=500, block_ms=10, pending_first=False):
        pass
    assert [b.batch for b in bus.read_acked(EXAMPLES, "student:s", ExampleBatch)] == [0, 1, 2]
    held = bus.read_own_pending(EXAMPLES, "student:s", "s-0", ExampleBatch)
    assert [b.batch for _, b in held] == [100 + i for i in range(600)]
    assert bus.read_acked(EXAMPLES, "student:absent", ExampleBatch) == []


def test_acked_batches_move_to_the_archive_and_out_of_redis_and_nothing_is_lost(bus, tmp_path):
    from pgkd.bus.archive import StreamArchive, archive_and_trim, first_id, full_history, trimmed_history

    archive = StreamArchive(tmp_path)
    assert archive_and_trim(bus, archive) == 0  # no stream, no group: nothing to do
    bus.ensure_group(EXAMPLES, "student:a")
    bus.ensure_group(EXAMPLES, "student:b")
    for i in range(5):
        bus.publish(EXAMPLES, batch(i))
    a = bus.read_group(EXAMPLES, "student:a", "a", ExampleBatch, count=3, pending_first=False)
    bus.ack(EXAMPLES, "student:a", [entry_id for entry_id, _ in a[:2]])  # batch 2 still pending for a
    b = bus.read_group(EXAMPLES, "student:b", "b", ExampleBatch, count=5, pending_first=False)
    bus.ack(EXAMPLES, "student:b", [entry_id for entry_id, _ in b])
    assert archive_and_trim(bus, archive) == 2  # 0 and 1: acked by both groups
    assert bus.stream_length(EXAMPLES) == 3 and archive_and_trim(bus, archive) == 0
    assert [b.batch for b in full_history(bus, StreamArchive(tmp_path), ExampleBatch)] == [0, 1, 2, 3, 4]
    assert StreamArchive(tmp_path).last_id() == b[-1][0]  # the archive holds all five, read back from the file
    # a restarted student a: what it acked comes from the archive and the stream, its pending entry stays pending
    acked = trimmed_history(archive, ExampleBatch, before=first_id(bus)) + bus.read_acked(
        EXAMPLES, "student:a", ExampleBatch)
    assert [x.batch for x in acked] == [0, 1]
    # a student added now starts at 0: trimming waits for it, and the archive gives it what was trimmed before
    bus.ensure_group(EXAMPLES, "student:c")
    bus.ack(EXAMPLES, "student:a", [a[2][0]])
    assert archive_and_trim(bus, archive) == 0
    early = trimmed_history(archive, ExampleBatch, before=first_id(bus))
    late = bus.read_group(EXAMPLES, "student:c", "c", ExampleBatch, count=10, pending_first=False)
    assert [x.batch for x in early] + [x.batch for _, x in late] == [0, 1, 2, 3, 4]


def test_backlog_counts_unread_and_unacked_entries_up_to_a_cap(bus):
    bus.ensure_group(EXAMPLES, "g")
    for i in range(10):
        bus.publish(EXAMPLES, batch(i))
    assert bus.backlog(EXAMPLES, "g", 100) == 10 and bus.backlog(EXAMPLES, "g", 3) == 4  # stops counting at cap + 1
    read = bus.read_group(EXAMPLES, "g", "c", ExampleBatch, count=6, pending_first=False)
    assert bus.backlog(EXAMPLES, "g", 100) == 10  # read but not acked still counts
    bus.ack(EXAMPLES, "g", [entry_id for entry_id, _ in read])
    assert bus.backlog(EXAMPLES, "g", 100) == 4 and bus.backlog(EXAMPLES, "absent", 100) == 0


def test_a_torn_last_line_of_the_archive_is_ignored_then_cut_and_nothing_is_lost_or_doubled(bus, tmp_path):
    """A driver killed in the middle of an append leaves part of a line (here written as that kill leaves it):
    readers skip it, the next append cuts it off and archives those entries again from Redis."""
    from pgkd.bus.archive import StreamArchive, archive_and_trim, full_history

    archive = StreamArchive(tmp_path)
    bus.ensure_group(EXAMPLES, "student:a")
    for i in range(5):
        bus.publish(EXAMPLES, batch(i))
    read = bus.read_group(EXAMPLES, "student:a", "a", ExampleBatch, count=10, pending_first=False)
    bus.ack(EXAMPLES, "student:a", [entry_id for entry_id, _ in read])
    assert archive_and_trim(bus, archive) == 5
    bus.publish(EXAMPLES, batch(5))
    torn_id = bus.client.xrange(bus.key(EXAMPLES))[0][0]
    with archive.path.open("ab") as out:
        out.write(b'{"id": "' + torn_id.encode() + b'", "json": "{\\"producer\\": \\"teach')
    fresh = StreamArchive(tmp_path)  # a reader after the crash: a student's restart, the report, resume
    assert fresh.last_id() == read[-1][0]
    assert [b.batch for b in full_history(bus, fresh, ExampleBatch)] == [0, 1, 2, 3, 4, 5]
    bus.ack(EXAMPLES, "student:a", [e for e, _ in bus.read_group(EXAMPLES, "student:a", "a", ExampleBatch)])
    assert archive_and_trim(bus, fresh) == 1  # repaired, archived again, then trimmed
    lines = archive.path.read_bytes().splitlines()
    assert len(lines) == 6 and archive.path.read_bytes().endswith(b"\n")
    assert [b.batch for b in full_history(bus, StreamArchive(tmp_path), ExampleBatch)] == [0, 1, 2, 3, 4, 5]


def test_the_embedded_server_dies_with_a_driver_killed_by_sigkill(tmp_path):
    """kill -9 of the driver used to leave its redis-server running with PPID 1."""
    import signal
    import subprocess
    import sys

    import psutil

    code = ("import sys, time; from pgkd.bus.server import EmbeddedRedis; "
            "s = EmbeddedRedis(sys.argv[1]).start().keep_alive(); print(s.process.pid, flush=True); time.sleep(600)")
    driver = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    server = psutil.Process(int(driver.stdout.readline()))
    assert server.is_running() and server.ppid() == driver.pid
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    gone, alive = psutil.wait_procs([server], timeout=10)
    for process in alive:
        process.kill()
    assert not alive, "the redis-server outlived its driver"


def test_a_group_that_acks_between_the_two_reads_of_the_trim_does_not_break_it(bus, tmp_path, monkeypatch):
    """CI once failed here: XINFO said one entry pending, the student acked it before XPENDING ran, and XPENDING's
    empty summary (min None) went into the id parser. The floor is then the group's last-delivered id + 1."""
    from pgkd.bus.archive import StreamArchive, acked_floor, archive_and_trim, stream_id

    bus.ensure_group(EXAMPLES, "student:a")
    for i in range(3):
        bus.publish(EXAMPLES, batch(i))
    read = bus.read_group(EXAMPLES, "student:a", "a", ExampleBatch, count=3, pending_first=False)
    real_xpending = bus.client.xpending

    def ack_first(name, group):  # the student's ack lands between XINFO GROUPS and XPENDING
        bus.ack(EXAMPLES, "student:a", [entry_id for entry_id, _ in read])
        return real_xpending(name, group)

    monkeypatch.setattr(bus.client, "xpending", ack_first)
    last = stream_id(read[-1][0])
    assert acked_floor(bus) == (last[0], last[1] + 1)
    assert archive_and_trim(bus, StreamArchive(tmp_path)) == 3
