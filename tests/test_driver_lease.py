"""The driver's lease on its run in Redis (pgkd/bus/lease.py), against a real redis-server: one holder at a time
from any machine, a dead holder's lease taken over (at once on its own host, after its TTL elsewhere), and a
driver whose lease was taken hears it."""
import json
import subprocess
import sys
import time

import pytest

from pgkd.bus.lease import LEASE, DriverLease, LeaseHeld


def elsewhere(lease: DriverLease, host: str = "another-node", pid: int = 4242) -> DriverLease:
    """The same lease as a driver on another machine would hold it: its PID means nothing here."""
    record = json.loads(lease.value) | {"host": host, "pid": pid}
    lease.value = json.dumps(record)
    return lease


def test_one_driver_holds_a_run_and_a_second_is_told_which_one(bus):
    first = elsewhere(DriverLease(bus, ttl_s=30))
    first.acquire()
    with pytest.raises(LeaseHeld, match=r"host another-node \(process 4242, driving for \d+ s\).*expires within 30 s"):
        DriverLease(bus, ttl_s=30).acquire()
    first.release()
    DriverLease(bus, ttl_s=30).acquire()  # released: free at once


def test_a_lease_nobody_renews_expires_and_the_run_is_taken_over(bus):
    gone = elsewhere(DriverLease(bus, ttl_s=0.3))  # a driver on a lost node: never renews, never releases
    gone.acquire()
    with pytest.raises(LeaseHeld):
        DriverLease(bus, ttl_s=30).acquire()
    time.sleep(0.4)
    taker = DriverLease(bus, ttl_s=30)
    taker.acquire()
    assert not gone.renew()  # the old driver, back, learns the run is no longer its own
    assert taker.renew()


def test_a_dead_driver_on_this_host_is_taken_over_at_once(bus):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = DriverLease(bus, ttl_s=30)
    dead.value = json.dumps(json.loads(dead.value) | {"pid": child.pid})  # this host, a process that has exited
    dead.acquire()
    DriverLease(bus, ttl_s=30).acquire()


def test_renewal_keeps_the_lease_alive_and_takes_it_again_after_an_outage_if_nobody_else_did(bus):
    lease = DriverLease(bus, ttl_s=1.5)  # renewed every 0.5 s: a second of scheduling delay is still in time
    lease.acquire()
    lease.keep()
    time.sleep(2.0)  # longer than the TTL: only renewals keep it
    with pytest.raises(LeaseHeld):
        DriverLease(bus, ttl_s=30).acquire()
    bus.client.delete(bus.key(LEASE))  # expired while Redis was unreachable, and nobody took the run
    assert lease.renew() and not lease.lost.is_set()
    lease.release()
    assert bus.client.get(bus.key(LEASE)) is None


def test_a_driver_whose_lease_was_taken_is_told_once(bus):
    lease = DriverLease(bus, ttl_s=0.3)
    lease.acquire()
    bus.client.set(bus.key(LEASE), json.dumps({"host": "other", "pid": 1, "since": time.time()}))  # taken over
    told = []
    lease.keep(on_lost=lambda: told.append(1))
    assert lease.lost.wait(2) and told == [1]
    lease.release()
    assert bus.client.get(bus.key(LEASE)) is not None  # release never removes another driver's lease
