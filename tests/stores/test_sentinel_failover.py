"""A Sentinel failover loses no session: the store follows the new master."""

from __future__ import annotations

import asyncio

import redis as sync_redis

from authsvc.stores.base import RefreshUse
from authsvc.stores.redis import RedisConfig, RedisSessionStore, close, open_client
from tests.stores.test_session_store_contract import A, B, C, make_session, use


async def test_sessions_survive_a_failover(io_loop, redis_sentinel, redis_server):
    client = await open_client(RedisConfig("redis://localhost/0", 3.0,
                                 sentinels=(("127.0.0.1", redis_sentinel.sentinel_port),),
                                 sentinel_master=redis_sentinel.MASTER))  # fmt: skip
    store = RedisSessionStore(client, key_prefix="failover:", timeout_s=3.0)
    try:
        sessions = [make_session() for _ in range(20)]
        for session in sessions:
            await store.create(session)
        master = sync_redis.Redis(port=redis_sentinel.master_port_now())
        assert master.wait(1, 5000) == 1  # the replica has every write
        master.close()
        before = redis_sentinel.master_port_now()
        redis_sentinel.failover()
        assert redis_sentinel.master_port_now() != before
        for session in sessions:  # no call fails for a connection to the old master
            assert await store.get(session.user_id, session.id) == session
        assert await use(store, sessions[0], A) is RefreshUse.CURRENT  # writable again
    finally:
        await store.close()


async def test_no_call_fails_for_a_connection_to_the_old_master(
    io_loop, redis_sentinel, redis_server
):
    """Once Sentinel names the new master, no call fails: the pooled connections to the
    old master (still up, now a replica that refuses writes) are replaced by a retry on
    a fresh connection, not each spent on one failed request (issue 12, item 3)."""
    client = await open_client(RedisConfig("redis://localhost/0", 3.0,
                                 sentinels=(("127.0.0.1", redis_sentinel.sentinel_port),),
                                 sentinel_master=redis_sentinel.MASTER))  # fmt: skip
    store = RedisSessionStore(client, key_prefix="failover-pool:", timeout_s=3.0)
    try:
        sessions = [make_session() for _ in range(16)]
        # Concurrent, so that the pool holds several connections to the master.
        await asyncio.gather(*(store.create(session) for session in sessions))
        await asyncio.gather(*(use(store, s, A, rotate_to=B) for s in sessions))
        master = sync_redis.Redis(port=redis_sentinel.master_port_now())
        assert master.wait(1, 5000) == 1
        master.close()
        await io_loop.run_in_executor(None, redis_sentinel.failover)
        outcomes = await asyncio.gather(
            *(use(store, s, B, rotate_to=C) for s in sessions), return_exceptions=True
        )
        assert outcomes == [RefreshUse.CURRENT] * len(sessions)
    finally:
        for session in sessions:
            await store.revoke_all(session.user_id)
        await store.close()


def commands_processed(watcher: sync_redis.Redis) -> int:
    """Commands the sentinel has answered so far (a sentinel keeps no commandstats),
    this INFO included."""
    return int(watcher.info("stats")["total_commands_processed"])


async def test_a_connection_asks_sentinel_once_per_connect(io_loop, redis_sentinel, redis_server):
    """Asking on every reconnect (above) must not become twice per connect."""
    client = await open_client(RedisConfig("redis://localhost/0", 3.0,
                                 sentinels=(("127.0.0.1", redis_sentinel.sentinel_port),),
                                 sentinel_master=redis_sentinel.MASTER))  # fmt: skip
    pool = client.connection_pool
    watcher = sync_redis.Redis(port=redis_sentinel.sentinel_port)

    async def six_at_once() -> None:  # blocking reads: a connection each
        await asyncio.gather(*(client.blpop(f"sentinel-asks:{i}", 0.2) for i in range(6)))

    try:
        # Once to grow both pools (the master's, and the sentinel client's own: its new
        # connections send commands of their own), then every connection reconnects.
        await six_at_once()
        assert len(pool._available_connections) == 6
        await pool.disconnect()
        first = commands_processed(watcher)
        before = commands_processed(watcher)
        info_itself = before - first
        await six_at_once()
        asked = commands_processed(watcher) - before - info_itself
        # Six connects, one question each (twice each was 12), and at most one command
        # of the sentinel client's own around them.
        assert 6 <= asked <= 7
    finally:
        watcher.close()
        await close(client)
