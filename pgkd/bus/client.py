"""The Redis bus: typed messages on streams with consumer groups, plus a few keys for live state.

Messages travel as JSON of pydantic models (never pickled). A malformed entry is moved to a dead-letter stream,
acked and counted, so it cannot block a consumer. Connection errors are retried with backoff; a bus that stays
down raises BusUnavailable naming the URL (without its password). A write that would not be safe to repeat after
a lost reply (an increment, a stream entry, several commands) goes through `once`, which runs it exactly once.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Callable, TypeVar

import redis
from pydantic import BaseModel, ValidationError

from pgkd.basics.errors import BusUnavailable
from pgkd.basics.redact import redact

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

LAG_SCAN = 100_000  # undelivered entries counted at most where Redis does not report the lag itself
EXAMPLES, CHECKPOINTS, REPORTS, DEAD_LETTERS = "examples", "checkpoints", "reports", "dead_letters"
SELECTION = "selection"  # SelectionScore per version: read by the evaluator and the report, never by a teacher
CHOICES = "choices"  # ChoiceMade each time the exported student changes: the report's time to a good student
RETRYABLE = (redis.ConnectionError, redis.TimeoutError, ConnectionError, OSError)
ONCE_TTL_S = 14 * 24 * 3600  # how long a named write's id is remembered: a restarted producer may come back with it
MAX_LUA_ARGS = 4000  # Redis's Lua unpacks at most ~8000 values at once: larger writes go in parts

# Runs the commands (each: its argument count, then the arguments) as one atomic step, unless the operation's
# key says it ran already; then it answers what the first run answered. A reply lost on the way back and the
# retry that follows therefore change nothing twice.
ONCE_SCRIPT = """
local done = redis.call('GET', KEYS[1])
if done then return cjson.decode(done) end
local replies, i = {}, 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  replies[#replies + 1] = redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
redis.call('SET', KEYS[1], cjson.encode(replies), 'EX', ARGV[1])
return replies
"""


class Bus:
    def __init__(self, url: str, run_id: str, retry_seconds: float = 30.0):
        self.url, self.run_id, self.retry_seconds = url, run_id, retry_seconds
        self.reconnects = 0  # commands that needed a retry: a reader checks it to recover replies lost in between
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=30, socket_connect_timeout=5,
                                           health_check_interval=15)
        self._once = self.client.register_script(ONCE_SCRIPT)

    # ---- plumbing
    def key(self, name: str) -> str:
        return f"pgkd:{self.run_id}:{name}"

    def call(self, fn: Callable, *args, **kwargs):
        """Run one Redis command, retrying connection errors with backoff for up to retry_seconds."""
        delay, deadline = 0.2, time.monotonic() + self.retry_seconds
        while True:
            try:
                return fn(*args, **kwargs)
            except RETRYABLE as exc:
                self.reconnects += 1
                if time.monotonic() >= deadline:
                    raise BusUnavailable(f"Redis at {redact(self.url)} unreachable: {exc}") from exc
                log.warning("redis at %s: %s; retrying in %.1fs", redact(self.url), exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def ping(self) -> None:
        self.call(self.client.ping)

    def once(self, operation: str | None, *commands: tuple) -> list:
        """Run write commands (("HINCRBYFLOAT", key, field, 1), ...) atomically and exactly once per `operation`
        id, however often a lost reply makes `call` send them again; a repeat returns the first run's replies.
        The commands are sent whole on every attempt (a redis-py pipeline empties itself when it fails). Give a
        stable id where the same logical write may come again from a restarted process; None: a fresh one."""
        # a fresh id can only come back within this call's retries: keep it a little longer than they last
        args: list = [ONCE_TTL_S if operation else int(max(600, 5 * self.retry_seconds))]
        for command in commands:
            args += [len(command), *command]
        key = self.key(f"once:{operation or uuid.uuid4().hex}")
        return self.call(self._once, keys=[key], args=args)

    def append_command(self, stream: str, message: BaseModel) -> tuple:
        """The XADD of a message, for `once` (with other writes that must happen with it, or not at all)."""
        return ("XADD", self.key(stream), "*", "json", message.model_dump_json())

    def count_commands(self, name: str, counts: dict[str, float]) -> list[tuple]:
        """The increments of counters of a hash, for `once`."""
        return [("HINCRBYFLOAT", self.key(name), field, value) for field, value in counts.items()]

    # ---- streams
    def publish(self, stream: str, message: BaseModel, operation: str | None = None) -> str:
        """Append a message; once only, even when the reply is lost and the append is retried (see `once`)."""
        return self.once(operation, self.append_command(stream, message))[0]

    def ensure_group(self, stream: str, group: str) -> None:
        try:
            self.call(self.client.xgroup_create, self.key(stream), group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_group(self, stream: str, group: str, consumer: str, model: type[M], count: int = 100,
                   block_ms: int = 1000, pending_first: bool = True) -> list[tuple[str, M]]:
        """Entries for this consumer: its own unacked ones first (after a restart), then new ones."""
        if pending_first:
            entries = self._xreadgroup(stream, group, consumer, "0", count, None)
            if entries:
                return entries_to_models(self, stream, group, entries, model)
        entries = self._xreadgroup(stream, group, consumer, ">", count, block_ms)
        return entries_to_models(self, stream, group, entries, model)

    def _xreadgroup(self, stream, group, consumer, start, count, block_ms) -> list:
        reply = self.call(self.client.xreadgroup, group, consumer, {self.key(stream): start}, count=count,
                          block=block_ms)
        return reply[0][1] if reply else []

    def read_own_pending(self, stream: str, group: str, consumer: str, model: type[M]) -> list[tuple[str, M]]:
        """Every entry delivered to this consumer and not acked yet (what it held when it died), oldest first."""
        found, start = [], "0"
        while entries := self._xreadgroup(stream, group, consumer, start, 500, None):
            found += entries_to_models(self, stream, group, entries, model)
            start = entries[-1][0]
        return found

    def read_acked(self, stream: str, group: str, model: type[M]) -> list[M]:
        """Entries the group has acked: delivered (up to its last-delivered id) and no longer pending."""
        groups = {g["name"]: g for g in self.call(self.client.xinfo_groups, self.key(stream))}
        if group not in groups:
            return []
        last = groups[group]["last-delivered-id"]
        pending = {p["message_id"] for p in self.call(self.client.xpending_range, self.key(stream), group,
                                                          "-", "+", 1_000_000)}
        entries = [e for e in self.call(self.client.xrange, self.key(stream), "-", last) if e[0] not in pending]
        return [model.model_validate_json(fields["json"]) for _, fields in entries]

    def ack(self, stream: str, group: str, ids: list[str]) -> None:
        if ids:
            self.call(self.client.xack, self.key(stream), group, *ids)

    def read_all(self, stream: str, model: type[M]) -> list[M]:
        entries = self.call(self.client.xrange, self.key(stream))
        return [model.model_validate_json(fields["json"]) for _, fields in entries if "json" in fields]

    def stream_length(self, stream: str) -> int:
        return self.call(self.client.xlen, self.key(stream))

    def pending(self, stream: str, group: str) -> int:
        try:
            return self.call(self.client.xpending, self.key(stream), group)["pending"]
        except redis.ResponseError:
            return 0

    def group_info(self, stream: str, group: str) -> dict | None:
        """The group's XINFO GROUPS entry; None when the stream or the group does not exist (yet)."""
        try:
            groups = self.call(self.client.xinfo_groups, self.key(stream))
        except redis.ResponseError:
            return None
        return next((info for info in groups if info["name"] == group), None)

    def lag(self, stream: str, group: str) -> int:
        """Entries not yet delivered to the group, plus delivered but unacked. Redis 7 says how many are
        undelivered (`lag`, nil after some deletions); Redis 6.2 does not, so they are counted (up to LAG_SCAN)."""
        info = self.group_info(stream, group)
        if info is None:
            return 0
        pending = int(info.get("pending") or 0)
        if info.get("lag") is not None:
            return int(info["lag"]) + pending
        return pending + self._undelivered(stream, info, LAG_SCAN)

    def _undelivered(self, stream: str, info: dict, cap: int) -> int:
        return len(self.call(self.client.xrange, self.key(stream), f"({info['last-delivered-id']}", "+", count=cap))

    def backlog(self, stream: str, group: str, cap: int) -> int:
        """Entries the group has not acked (pending, and not yet delivered), counted up to cap + 1; works on
        Redis 6.2, whose XINFO GROUPS has no `lag`."""
        info = self.group_info(stream, group)
        if info is None:
            return 0
        pending = int(info.get("pending") or 0)
        if pending > cap:
            return pending
        return pending + self._undelivered(stream, info, cap + 1 - pending)

    # ---- keys
    def set_model(self, name: str, message: BaseModel) -> None:
        self.call(self.client.set, self.key(name), message.model_dump_json())

    def get_model(self, name: str, model: type[M]) -> M | None:
        raw = self.call(self.client.get, self.key(name))
        return model.model_validate_json(raw) if raw else None

    def set_once(self, name: str, message: BaseModel) -> bool:
        return bool(self.call(self.client.set, self.key(name), message.model_dump_json(), nx=True))

    def add_counts(self, name: str, counts: dict[str, float], operation: str | None = None) -> None:
        """Add to counters of a hash, all or none, once (a retried increment would count twice)."""
        if counts:
            self.once(operation, *self.count_commands(name, counts))

    def next_number(self, name: str) -> int:
        """0, 1, 2, ... across every process of the run (an atomic counter)."""
        return int(self.call(self.client.incr, self.key(name))) - 1

    def set_fields(self, name: str, fields: dict[str, str | float]) -> None:
        if fields:
            self.call(self.client.hset, self.key(name), mapping={k: str(v) for k, v in fields.items()})

    def get_fields(self, name: str) -> dict[str, str]:
        return self.call(self.client.hgetall, self.key(name))


def entries_to_models(bus: Bus, stream: str, group: str, entries: list, model: type[M]) -> list[tuple[str, M]]:
    """Validate each entry; a malformed one goes to the dead-letter stream, is acked and counted."""
    good = []
    for entry_id, fields in entries:
        if fields is None:  # trimmed while pending
            bus.ack(stream, group, [entry_id])
            continue
        try:
            good.append((entry_id, model.model_validate_json(fields.get("json", ""))))
        except (ValidationError, ValueError, json.JSONDecodeError) as exc:
            log.warning("rejected malformed %s entry %s: %s", stream, entry_id, str(exc)[:200])
            bus.once(f"dead:{stream}:{entry_id}", ("XADD", bus.key(DEAD_LETTERS), "*", "stream", stream, "id",
                                                   entry_id, "error", str(exc)[:500], "raw", str(fields)[:2000]),
                     *bus.count_commands("stats:bus", {f"rejected_{stream}": 1}))  # a redelivery counts once
            bus.ack(stream, group, [entry_id])
    return good
