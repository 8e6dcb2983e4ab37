"""Redis specifics: key layout (Cluster hash tag) and expiry at the session's end."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from authsvc.stores.base import RefreshUse, UseLimit
from authsvc.stores.redis import RedisSessionStore
from tests.stores.test_session_store_contract import make_session


async def test_key_has_user_hash_tag_and_expires_at_session_end(io_loop, redis_server):
    store = RedisSessionStore.from_url(
        redis_server.url, key_prefix=redis_server.prefix, timeout_s=3.0
    )
    try:
        session = make_session(expires_in_s=600)
        await store.create(session)
        key = store.key(session.user_id, session.id)
        assert key == f"{redis_server.prefix}session:{{{session.user_id}}}:{session.id}"
        raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
        expire_ms = raw.pexpiretime(key)
        assert abs(expire_ms - int(session.expires_at.timestamp() * 1000)) < 5
        stored = raw.hgetall(key)
        assert sorted(stored) == [  # a hash of the jti, never a token
            "created_at",
            "epoch",
            "expires_at",
            "ip",
            "last_used_at",
            "refresh_jti_hash",
            "user_agent",
        ]
        raw.close()
    finally:
        await store.close()


async def test_use_counter_shares_the_user_hash_tag_and_expires_with_its_window(
    io_loop, redis_server
):
    """The per-session refresh limit is counted in the refresh script itself, so its
    key must live in the same Cluster slot as the session's."""
    store = RedisSessionStore.from_url(
        redis_server.url, key_prefix=redis_server.prefix, timeout_s=3.0
    )
    try:
        session = make_session()
        await store.create(session)
        outcome = await store.use_refresh(
            session.user_id, session.id, session.refresh_jti_hash, rotate_to=None,
            now=datetime.now(UTC), grace_s=0, idle_timeout_s=0, limit=UseLimit(5, 60),
        )  # fmt: skip
        assert outcome is RefreshUse.CURRENT
        key = store.use_counter_key(session.user_id, session.id)
        assert key == f"{redis_server.prefix}rl:refresh:{{{session.user_id}}}:{session.id}"
        raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
        assert raw.get(key) == "1" and 0 < raw.pttl(key) <= 60_000
        raw.close()
    finally:
        await store.close()
