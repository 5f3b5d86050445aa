"""The active-learning queue on the bus: the pool scorer offers the texts the best student is least sure of,
teachers claim the most uncertain first; and the pool's progress for status and the report.

A sorted set (text id -> uncertainty) with one PoolHint per id. ZPOPMAX hands each text to one teacher replica
only. A claimed text is not offered again while its claim is fresh (CLAIM_TTL_S), and once a teacher has tried
it, it is marked labelled and never offered again, in this session or a resumed one (ids are hashes of the
text). A teacher that dies between claim and mark loses the claim; a round after the claim went stale offers
the text again.
"""
from __future__ import annotations

import time

from pgkd.bus.client import MAX_LUA_ARGS, Bus
from pgkd.bus.messages import PoolHint

QUEUE, HINTS, LABELLED, CLAIMED = "pool:queue", "pool:hints", "pool:labelled", "pool:claimed"
CLAIM_TTL_S = 900.0  # longer than any teacher batch: a claim older than this was lost with its teacher
STATE = "pool:state"  # hash: pool rows, shards, cursor, rounds, texts scored, bad rows, strategy (pool scorer)


def offer(bus: Bus, hints: list[PoolHint], claim_ttl_s: float = CLAIM_TTL_S) -> int:
    """Queue hints for texts neither labelled nor freshly claimed (both read now, not when the round began); a
    text already queued keeps its highest uncertainty."""
    done = labelled(bus) | claimed(bus, claim_ttl_s)
    fresh = [h for h in hints if h.id not in done]
    if not fresh:
        return 0
    part = MAX_LUA_ARGS // 2  # two values per hint in each command
    for start in range(0, len(fresh), part):
        chunk = fresh[start:start + part]
        queue = [item for h in chunk for item in (h.uncertainty, h.id)]
        hints = [item for h in chunk for item in (h.id, h.model_dump_json())]
        bus.once(None, ("ZADD", bus.key(QUEUE), "GT", *queue), ("HSET", bus.key(HINTS), *hints))
    return len(fresh)


def claim(bus: Bus, count: int) -> list[PoolHint]:
    """The `count` most uncertain queued texts, removed from the queue for this caller alone (once: a pop whose
    reply was lost is answered again on the retry, not popped a second time and lost)."""
    popped = bus.once(None, ("ZPOPMAX", bus.key(QUEUE), count))[0][::2]  # [member, score, member, score, ...]
    if not popped:
        return []
    bus.call(bus.client.zadd, bus.key(CLAIMED), {text_id: time.time() for text_id in popped})
    raw = bus.call(bus.client.hmget, bus.key(HINTS), popped)
    return [PoolHint.model_validate_json(item) for item in raw if item]


def mark_labelled(bus: Bus, ids: list[str]) -> None:
    if ids:
        bus.once(None, ("SADD", bus.key(LABELLED), *ids), ("ZREM", bus.key(CLAIMED), *ids),
                 ("HDEL", bus.key(HINTS), *ids))


def labelled(bus: Bus) -> set[str]:
    return {str(i) for i in bus.call(bus.client.smembers, bus.key(LABELLED))}


def claimed(bus: Bus, ttl_s: float = CLAIM_TTL_S) -> set[str]:
    """Ids a teacher claimed within ttl_s and has not marked yet."""
    return {str(i) for i in bus.call(bus.client.zrangebyscore, bus.key(CLAIMED), time.time() - ttl_s, "+inf")}


def labelled_count(bus: Bus) -> int:
    return int(bus.call(bus.client.scard, bus.key(LABELLED)))


def queued(bus: Bus) -> int:
    return int(bus.call(bus.client.zcard, bus.key(QUEUE)))


def set_state(bus: Bus, **fields) -> None:
    bus.set_fields(STATE, fields)


def state(bus: Bus) -> dict[str, str]:
    return bus.get_fields(STATE)
