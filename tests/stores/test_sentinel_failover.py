"""A Sentinel failover loses no session: the store follows the new master."""

from __future__ import annotations

import redis as sync_redis

from authsvc.stores.base import RefreshUse
from authsvc.stores.redis import RedisConfig, RedisSessionStore, open_client
from tests.stores.test_session_store_contract import A, make_session, use


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
        for session in sessions:  # the first calls may meet the old master going away
            for _ in range(20):
                try:
                    found = await store.get(session.user_id, session.id)
                    break
                except Exception:
                    await io_loop.run_in_executor(None, lambda: __import__("time").sleep(0.2))
            assert found == session
        assert await use(store, sessions[0], A) is RefreshUse.CURRENT  # writable again
    finally:
        await store.close()
