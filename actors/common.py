"""What every actor shell shares: logging, its bus, thread budget."""
from __future__ import annotations

import logging
import sys

from cluster.placement import set_thread_budget
from pgkd.bus import Bus


def setup_actor(name: str, bus_url: str, run_id: str, threads: int) -> Bus:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    set_thread_budget(threads)
    bus = Bus(bus_url, run_id)
    bus.ping()
    return bus
