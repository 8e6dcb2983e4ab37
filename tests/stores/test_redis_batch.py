"""Commands sent together share one pipeline, and each keeps its own reply."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from authsvc.stores.base import StoreUnavailable
from authsvc.stores.redis import RedisConfig, open_client
from authsvc.stores.redis import close as close_redis
from authsvc.stores.redis_batch import MAX_BATCH, CommandBatcher


@pytest.fixture
def client(io_loop, redis_server):
    client = io_loop.run_sync(lambda: open_client(RedisConfig(redis_server.url, 3.0)))
    yield client
    io_loop.run_sync(lambda: close_redis(client))


def key(redis_server) -> str:
    return f"{redis_server.prefix}batch:{uuid.uuid4().hex}"


async def test_replies_and_errors_go_to_their_own_callers(client, redis_server):
    batcher = CommandBatcher(client, 3.0)
    counter, text = key(redis_server), key(redis_server)
    await client.set(text, "not a number")
    results = await asyncio.gather(
        batcher.execute("INCR", counter),
        batcher.execute("INCR", text),  # an error for this one alone
        batcher.execute("INCR", counter),
        batcher.execute("GET", counter),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 2 and results[3] == "2"
    assert isinstance(results[1], ResponseError)


async def test_commands_of_one_turn_share_a_connection(redis_server):
    """Seen from the server: 100 commands issued at once arrive on one connection (one
    pipeline, in issue order), where lone calls would each have taken one of the pool."""
    tag = f"batch-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_server.url, decode_responses=True, client_name=tag)
    batcher = CommandBatcher(client, 3.0)
    name = key(redis_server)
    replies = await asyncio.gather(*(batcher.execute("RPUSH", name, i) for i in range(100)))
    assert replies == list(range(1, 101))
    assert await client.lrange(name, 0, -1) == [str(i) for i in range(100)]
    clients = await client.client_list()
    assert sum(1 for c in clients if c["name"] == tag) == 1
    # More than MAX_BATCH at once: several pipelines, every command answered once.
    replies = await asyncio.gather(
        *(batcher.execute("RPUSH", name, i) for i in range(MAX_BATCH + 50))
    )
    assert sorted(replies) == list(range(101, 101 + MAX_BATCH + 50))
    await client.aclose()


async def test_a_script_the_server_lost_is_loaded_again(client, redis_server):
    batcher = CommandBatcher(client, 3.0)
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    name = key(redis_server)
    assert await batcher.evalsha(script, [name], []) == 1
    await client.script_flush()
    results = await asyncio.gather(*(batcher.evalsha(script, [name], []) for _ in range(5)))
    assert sorted(results) == [2, 3, 4, 5, 6]  # each ran exactly once


async def test_a_caller_that_gives_up_leaves_the_others_their_replies(client, redis_server):
    batcher = CommandBatcher(client, 3.0)
    name = key(redis_server)
    hurried = asyncio.ensure_future(batcher.execute("INCR", name))
    patient = asyncio.ensure_future(batcher.execute("INCR", name))
    hurried.cancel()
    assert await patient in (1, 2)
    with pytest.raises(asyncio.CancelledError):
        await hurried


async def test_an_unreachable_server_fails_every_waiter():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = redis.Redis(port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    batcher = CommandBatcher(client, 3.0)
    results = await asyncio.gather(
        *(batcher.execute("PING") for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    assert all(isinstance(r.__cause__, RedisConnectionError) for r in results)
    await client.aclose()


async def test_one_timer_bounds_the_whole_batch(client, redis_server):
    """A batch that Redis does not answer in time fails every waiter with
    StoreUnavailable, within the timeout; the batcher then serves the next turn."""
    batcher = CommandBatcher(client, 0.3)
    name = key(redis_server)
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(
        batcher.execute("INCR", name),
        batcher.execute("BLPOP", key(redis_server), 2),  # holds the pipeline for 2 s
        batcher.execute("INCR", name),
        return_exceptions=True,
    )
    assert asyncio.get_running_loop().time() - started < 1.5
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    # As with any timeout, a command may or may not have run (here the first did, and
    # the one behind BLPOP went with the dropped connection); the batcher goes on.
    assert await batcher.execute("INCR", name) in (2, 3)
