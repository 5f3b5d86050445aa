"""The driver's lease on its run: one key in Redis with a time to live that the driver renews, so that `pgkd run`
and `pgkd resume` on any machine refuse while another driver holds the run, and take it over once that driver is
gone (its lease expired, or, on the same host, its process is dead). A PID alone is seen on one host only.

A driver that finds its lease taken (it was partitioned from Redis longer than the TTL and another driver took
over) hears it from renew() and must stop driving: two drivers would launch every actor twice.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time

from pgkd.bus.client import Bus

log = logging.getLogger("pgkd.driver")
LEASE = "driver:lease"

# KEYS[1] lease; ARGV: new value, ttl ms, the stale value it may replace ("" for none)
TAKE = """
local held = redis.call('GET', KEYS[1])
if (not held) or (ARGV[3] ~= '' and held == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# KEYS[1] lease; ARGV: own value, ttl ms. 1: renewed (or taken again: it expired while Redis was away and nobody
# took it); 0: another driver's now
RENEW = """
local held = redis.call('GET', KEYS[1])
if (not held) or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaseHeld(Exception):
    """Another driver holds the run; the message says which, and for how long at most."""


def holder_text(holder: dict, ttl_ms: int) -> str:
    age = time.time() - holder.get("since", time.time())
    return (f"a driver on host {holder.get('host', '?')} (process {holder.get('pid', '?')}, driving for "
            f"{age:.0f} s); its lease expires within {max(ttl_ms, 0) / 1000:.0f} s unless it renews it")


def pid_namespace() -> str:
    """The PID namespace this process sees (containers on one host may share a hostname, never this)."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def same_pid_space(holder: dict) -> bool:
    """Whether the holder's PID means the same process here: same host and same PID namespace."""
    return (holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
            and holder.get("pidns", "") == pid_namespace())


def pid_is_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False


class DriverLease:
    def __init__(self, bus: Bus, ttl_s: float):
        self.bus, self.ttl_ms = bus, int(ttl_s * 1000)
        self.value = json.dumps({"token": secrets.token_hex(8), "host": socket.gethostname(), "pid": os.getpid(),
                                 "pidns": pid_namespace(), "since": time.time()})
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holder(self) -> tuple[dict | None, str | None, int]:
        """(the holder's record, its raw value, ms left) or (None, None, 0) when nobody holds the run."""
        raw = self.bus.call(self.bus.client.get, self.bus.key(LEASE))
        if raw is None:
            return None, None, 0
        ttl = self.bus.call(self.bus.client.pttl, self.bus.key(LEASE))
        try:
            return json.loads(raw), raw, int(ttl)
        except ValueError:  # not ours to read: treat as held, never as free
            return {"host": "?", "pid": "?"}, raw, int(ttl)

    def acquire(self) -> None:
        """Take the run, or raise LeaseHeld naming the driver that has it. A holder on this host whose process
        is dead (a killed driver) is taken over at once rather than after its TTL."""
        holder, raw, ttl = self.holder()
        stale = raw if holder and same_pid_space(holder) and pid_is_dead(holder["pid"]) else ""
        taken = self.bus.call(self.bus.client.eval, TAKE, 1, self.bus.key(LEASE), self.value, self.ttl_ms, stale)
        if not taken:
            holder, _, ttl = self.holder()
            raise LeaseHeld(holder_text(holder or {}, ttl))
        if stale:
            log.info("took over the run from a dead driver on this host (process %s)", holder["pid"])

    def renew(self) -> bool:
        return bool(self.bus.call(self.bus.client.eval, RENEW, 1, self.bus.key(LEASE), self.value, self.ttl_ms))

    def keep(self, on_lost=lambda: None) -> None:
        """Renew every third of the TTL on a thread until release(); on_lost() once if the lease was taken."""
        def loop():
            while not self._stop.wait(self.ttl_ms / 3000):
                try:
                    if not self.renew():
                        log.error("this driver's lease on the run was taken by another driver: stopping")
                        on_lost()
                        self.lost.set()  # last: whoever waits on it finds on_lost done
                        return
                except Exception as exc:  # Redis away longer than its retries: try again next time
                    log.warning("could not renew the driver's lease: %s", exc)

        self._thread = threading.Thread(target=loop, name="pgkd-driver-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.bus.call(self.bus.client.eval, RELEASE, 1, self.bus.key(LEASE), self.value)
        except Exception as exc:  # the key expires by itself
            log.warning("could not release the driver's lease (it expires by itself): %s", exc)
