"""Pooled connections that a restart or a failover closed never fail a request once the
server answers again: they are checked before use or replaced by one retry on a fresh
connection (issue 12, item 3). And a server that is down is answered at once, not
after retries that spend the whole store timeout.

Each topology here is the test's own: restarting a node of the shared ones would break
other tests."""

from __future__ import annotations

import asyncio
import time

import pytest

from authsvc.stores.base import RefreshUse, StoreUnavailable
from authsvc.stores.redis import RedisConfig, RedisSessionStore, open_client
from tests.e2e.processes import ThrowawayRedis
from tests.stores.redis_topologies import Cluster
from tests.stores.test_session_store_contract import A, B, make_session, use

CALLS = 24


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    topology = Cluster(tmp_path_factory.mktemp("restarted-cluster"))
    yield topology
    topology.stop()


async def warm(store: RedisSessionStore) -> list:
    """Sessions made concurrently, so that the pool holds several connections."""
    sessions = [make_session() for _ in range(CALLS)]
    assert await asyncio.gather(*(store.create(s) for s in sessions)) == [True] * CALLS
    return sessions


async def test_a_cluster_node_restart_fails_no_call_once_the_cluster_is_whole(io_loop, cluster):
    client = await open_client(RedisConfig(cluster.url, 3.0, cluster=True))
    store = RedisSessionStore(client, key_prefix="stale:", timeout_s=3.0)
    try:
        await warm(store)
        await io_loop.run_in_executor(None, cluster.restart, 0)
        # Every node holds some of the users: each call below meets the restarted node's
        # pooled connections unless they were replaced.
        fresh = [make_session() for _ in range(CALLS)]
        created = await asyncio.gather(*(store.create(s) for s in fresh), return_exceptions=True)
        assert created == [True] * CALLS
        used = await asyncio.gather(*(use(store, s, A, rotate_to=B) for s in fresh))
        assert used == [RefreshUse.CURRENT] * CALLS
    finally:
        await store.close()


@pytest.fixture
def single_server(tmp_path):
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def single_store(io_loop, single_server):
    client = io_loop.run_sync(lambda: open_client(RedisConfig(single_server.url, 3.0)))
    store = RedisSessionStore(client, key_prefix="stale:", timeout_s=3.0)
    yield store
    io_loop.run_sync(store.close)


async def test_a_single_server_restart_fails_no_call_once_it_answers(single_server, single_store):
    await warm(single_store)
    assert single_server.process is not None
    single_server.process.kill()
    single_server.process.wait()
    single_server.start()
    fresh = [make_session() for _ in range(CALLS)]
    created = await asyncio.gather(*(single_store.create(s) for s in fresh), return_exceptions=True)
    assert created == [True] * CALLS


async def test_a_server_that_is_down_is_answered_at_once(single_server, single_store):
    """Refused connections are not retried with backoff until the timeout: the caller
    learns at once that the store is down."""
    await warm(single_store)
    single_server.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await single_store.create(make_session())
    assert time.monotonic() - started < 1.0


async def test_a_rotation_redis_runs_late_still_lets_its_retry_in(io_loop, single_server):
    """Redis froze with a rotation in its socket: the caller gave up (unavailable) and
    the client waits past the grace window before it retries, as told. When Redis
    resumes it runs the rotation; it must count from then, not from when it was sent,
    or the client's retry with the same token reads as reuse and ends the session."""
    client = await open_client(RedisConfig(single_server.url, 0.5))
    store = RedisSessionStore(client, key_prefix="late:", timeout_s=0.5)
    grace_s = 1.0
    try:
        session, warm = make_session(), make_session()
        assert await store.create(session) and await store.create(warm)
        # The script is known to the server (a first EVALSHA there would just fail).
        assert await use(store, warm, A, rotate_to=B) is RefreshUse.CURRENT
        single_server.freeze()
        try:
            with pytest.raises(StoreUnavailable):
                await use(store, session, A, rotate_to=B, grace_s=grace_s)
            await asyncio.sleep(grace_s + 1.0)  # longer than the grace window
        finally:
            single_server.thaw()
        outcome = None
        for _ in range(20):  # the first calls may meet the connection the timeout cut
            try:
                outcome = await use(store, session, A, rotate_to=B, grace_s=grace_s)
                break
            except StoreUnavailable:
                await asyncio.sleep(0.1)
        assert outcome in (RefreshUse.GRACE, RefreshUse.CURRENT), outcome
        assert await store.get(session.user_id, session.id) is not None
    finally:
        await store.close()
