"""The CounterStore contract (rate limits), run against Redis (single, Cluster,
Sentinel) and SQLite."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta


def key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_increment_counts_within_one_window(counter_store):
    name = key()
    first = await counter_store.increment(name, 60)
    assert first.count == 1
    assert timedelta(seconds=58) < first.resets_at - datetime.now(UTC) <= timedelta(seconds=61)
    second = await counter_store.increment(name, 60)
    assert second.count == 2
    assert abs((second.resets_at - first.resets_at).total_seconds()) < 1.5  # same window
    peeked = await counter_store.peek(name)
    assert peeked is not None and peeked.count == 2


async def test_unknown_counter_peeks_none_and_reset_clears(counter_store):
    name = key()
    assert await counter_store.peek(name) is None
    await counter_store.increment(name, 60)
    await counter_store.reset(name)
    assert await counter_store.peek(name) is None
    assert (await counter_store.increment(name, 60)).count == 1


async def test_a_window_ends(counter_store):
    name = key()
    await counter_store.increment(name, 0.3)
    await asyncio.sleep(0.45)
    assert await counter_store.peek(name) is None
    assert (await counter_store.increment(name, 0.3)).count == 1


async def test_concurrent_increments_are_all_counted(counter_store):
    name = key()
    counts = await asyncio.gather(*(counter_store.increment(name, 60) for _ in range(50)))
    assert sorted(c.count for c in counts) == list(range(1, 51))


async def test_decrement_gives_one_hit_back_in_the_same_window(counter_store):
    name = key()
    for _ in range(3):
        counted = await counter_store.increment(name, 60)
    await counter_store.decrement(name)
    peeked = await counter_store.peek(name)
    assert peeked is not None and peeked.count == 2
    assert abs((peeked.resets_at - counted.resets_at).total_seconds()) < 1.5  # same window
    assert (await counter_store.increment(name, 60)).count == 3


async def test_decrement_never_goes_below_zero_nor_makes_a_counter(counter_store):
    name = key()
    await counter_store.decrement(name)  # no counter: nothing happens
    assert await counter_store.peek(name) is None
    await counter_store.increment(name, 60)
    for _ in range(3):
        await counter_store.decrement(name)
    peeked = await counter_store.peek(name)
    assert peeked is None or peeked.count == 0
    assert (await counter_store.increment(name, 60)).count == 1


async def test_decrement_after_the_window_ends_does_nothing(counter_store):
    name = key()
    await counter_store.increment(name, 0.3)
    await asyncio.sleep(0.45)
    await counter_store.decrement(name)
    assert await counter_store.peek(name) is None
    assert (await counter_store.increment(name, 60)).count == 1


async def test_concurrent_increments_and_decrements_all_land(counter_store):
    name = key()
    for _ in range(20):
        await counter_store.increment(name, 60)
    await asyncio.gather(
        *(counter_store.increment(name, 60) for _ in range(30)),
        *(counter_store.decrement(name) for _ in range(15)),
    )
    peeked = await counter_store.peek(name)
    assert peeked is not None and peeked.count == 35
