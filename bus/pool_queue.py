"""The active-learning queue on the bus: students offer the pool texts they are least sure of, teachers claim
the most uncertain first.

A sorted set (index -> uncertainty) with one PoolHint per index. ZPOPMAX hands each text to one teacher replica
only. A text is marked labelled once a teacher has tried it, so it is never offered again; a teacher that dies
between claim and mark loses the claim, and the next student version offers the text again.
"""
from __future__ import annotations

from bus.client import Bus
from bus.messages import PoolHint

QUEUE, HINTS, LABELLED = "pool:queue", "pool:hints", "pool:labelled"


def offer(bus: Bus, hints: list[PoolHint], done: set[int] | None = None) -> int:
    """Queue hints for texts not labelled yet (`done`: the labelled set, if the caller just read it); a text
    already queued keeps its highest uncertainty."""
    done = labelled(bus) if done is None else done
    fresh = [h for h in hints if h.index not in done]
    if not fresh:
        return 0
    with bus.client.pipeline() as pipe:
        pipe.zadd(bus.key(QUEUE), {str(h.index): h.uncertainty for h in fresh}, gt=True)
        pipe.hset(bus.key(HINTS), mapping={str(h.index): h.model_dump_json() for h in fresh})
        bus.call(pipe.execute)
    return len(fresh)


def claim(bus: Bus, count: int) -> list[PoolHint]:
    """The `count` most uncertain queued texts, removed from the queue for this caller alone."""
    popped = bus.call(bus.client.zpopmax, bus.key(QUEUE), count)
    if not popped:
        return []
    raw = bus.call(bus.client.hmget, bus.key(HINTS), [index for index, _ in popped])
    return [PoolHint.model_validate_json(item) for item in raw if item]


def mark_labelled(bus: Bus, indices: list[int]) -> None:
    if indices:
        bus.call(bus.client.sadd, bus.key(LABELLED), *[str(i) for i in indices])


def labelled(bus: Bus) -> set[int]:
    return {int(i) for i in bus.call(bus.client.smembers, bus.key(LABELLED))}


def queued(bus: Bus) -> int:
    return int(bus.call(bus.client.zcard, bus.key(QUEUE)))
