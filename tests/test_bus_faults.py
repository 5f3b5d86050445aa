"""Writes on the bus under a network that loses replies: the request reaches Redis, Redis does it, and the
connection is cut before the answer comes back (tests/cutting_proxy.py). The client retries; nothing may be
lost (a retried redis-py pipeline used to run empty) or doubled (a retried XADD or HINCRBYFLOAT used to)."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from pgkd.bus import pool_queue
from pgkd.bus.client import EXAMPLES, Bus
from pgkd.bus.messages import Example, ExampleBatch, PoolHint
from tests.cutting_proxy import CuttingProxy


@pytest.fixture
def cut(redis_server, request):
    """(bus through the proxy, bus straight to Redis, the proxy)."""
    parts = urlsplit(redis_server.url)
    proxy = CuttingProxy(parts.hostname, parts.port)
    netloc = parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"
    run_id = request.node.name
    yield (Bus(urlunsplit(parts._replace(netloc=netloc)), run_id, retry_seconds=20), Bus(redis_server.url, run_id),
           proxy)
    proxy.close()


def test_counts_added_once_when_the_reply_is_lost(cut):
    through, direct, proxy = cut
    proxy.cut_reply_to(b"HINCRBYFLOAT", times=2)
    through.add_counts("stats:t", {"generated": 8, "kept": 5})
    through.add_counts("stats:t", {"generated": 8, "kept": 3})
    assert proxy.cuts == 2 and through.reconnects >= 2
    assert direct.get_fields("stats:t") == {"generated": "16", "kept": "8"}


def test_counts_and_several_commands_are_sent_whole_again_when_the_request_is_lost(cut):
    """A redis-py pipeline empties itself when it fails: retried, it ran nothing and the counts were lost."""
    through, direct, proxy = cut
    proxy.cut_request_to(b"HINCRBYFLOAT")
    through.add_counts("stats:t", {"generated": 8, "kept": 5})
    assert proxy.cuts == 1 and direct.get_fields("stats:t") == {"generated": "8", "kept": "5"}
    hints = [PoolHint(id=f"id{i}", text=f"text {i}", uncertainty=i / 10, student="s", version=0,
                      top_labels=["a", "b"]) for i in range(3)]
    pool_queue.offer(direct, hints)
    claimed = pool_queue.claim(direct, 3)
    proxy.cut_request_to(b"SADD")
    pool_queue.mark_labelled(through, [h.id for h in claimed])
    assert proxy.cuts == 2 and pool_queue.labelled(direct) == {h.id for h in claimed}


def test_a_batch_published_once_when_the_reply_is_lost(cut):
    through, direct, proxy = cut
    proxy.cut_reply_to(b"XADD")
    batch = ExampleBatch(producer="teacher-0", batch=1, examples=[Example(text="t", label="a", source="generated")])
    entry_id = through.publish(EXAMPLES, batch)
    assert proxy.cuts == 1
    entries = direct.read_all(EXAMPLES, ExampleBatch)
    assert [b.batch for b in entries] == [1] and entry_id == direct.client.xrange(direct.key(EXAMPLES))[0][0]


def test_a_repeated_operation_id_writes_nothing_more(cut):
    """A producer that comes back after a crash with the same id (teacher-0, batch 3) does not publish again."""
    _, direct, _ = cut
    batch = ExampleBatch(producer="teacher-0", batch=3, examples=[Example(text="t", label="a", source="generated")])
    first = direct.publish(EXAMPLES, batch, operation="examples:teacher-0:3")
    again = direct.publish(EXAMPLES, batch, operation="examples:teacher-0:3")
    assert first == again and direct.stream_length(EXAMPLES) == 1


def test_pool_offers_and_marks_survive_lost_replies(cut):
    through, direct, proxy = cut
    hints = [PoolHint(id=f"id{i}", text=f"text {i}", uncertainty=i / 10, student="s", version=0,
                      top_labels=["a", "b"]) for i in range(4)]
    proxy.cut_reply_to(b"ZADD")
    assert pool_queue.offer(through, hints) == 4
    assert pool_queue.queued(direct) == 4
    proxy.cut_reply_to(b"ZPOPMAX")
    claimed = pool_queue.claim(through, 2)  # popped, answer lost: the retry hands over the same two
    assert [h.id for h in claimed] == ["id3", "id2"] and pool_queue.queued(direct) == 2
    proxy.cut_reply_to(b"SADD")
    pool_queue.mark_labelled(through, [h.id for h in claimed])
    assert proxy.cuts == 3
    assert pool_queue.labelled(direct) == {h.id for h in claimed} and pool_queue.claimed(direct) == set()


def test_a_large_offer_goes_in_parts_redis_lua_can_unpack(cut):
    """Redis's Lua unpacks about 8000 values at once: a round offering 5000 texts used to fail as one write."""
    _, direct, _ = cut
    hints = [PoolHint(id=f"id{i}", text=f"text {i}", uncertainty=(i % 97) / 97, student="s", version=0,
                      top_labels=["a", "b"]) for i in range(5000)]
    assert pool_queue.offer(direct, hints) == 5000 and pool_queue.queued(direct) == 5000
