"""Redis specifics of revocation epochs: the key's hash tag, and that it outlives every
session it may have to refuse (an epoch that expired first would read 0 again)."""

from __future__ import annotations

import time
from dataclasses import replace

import redis

from authsvc.stores.base import EPOCH_MIN_TTL_S, RefreshUse
from authsvc.stores.redis import RedisSessionStore
from tests.stores.test_session_store_contract import A, make_session, use

DAY_S = 24 * 3600


async def test_the_epoch_key_shares_the_hash_tag_and_outlives_every_session(redis_server):
    store = RedisSessionStore.from_url(
        redis_server.url, key_prefix=redis_server.prefix, timeout_s=3.0
    )
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        long = make_session(expires_in_s=3 * DAY_S)
        user_id = long.user_id
        await store.create(long)
        key = store.epoch_key(user_id)
        assert key == f"{redis_server.prefix}epoch:{{{user_id}}}"
        assert raw.exists(key) == 0  # epoch 0 needs no key

        await store.revoke_all(user_id)  # the long session could still be presented
        assert abs(raw.pexpiretime(key) - int(long.expires_at.timestamp() * 1000)) < 5

        alone = make_session()  # a user with no session keeps it the minimum time
        await store.revoke_all(alone.user_id)
        floor_end_ms = (time.time() + EPOCH_MIN_TTL_S) * 1000
        assert abs(raw.pexpiretime(store.epoch_key(alone.user_id)) - floor_end_ms) < 2000

        later = replace(make_session(expires_in_s=5 * DAY_S, user_id=user_id), epoch=1)
        assert await store.create(later)  # a session made under the epoch extends it
        assert abs(raw.pexpiretime(key) - int(later.expires_at.timestamp() * 1000)) < 5
        await store.revoke_all(user_id)  # and a bump never shortens it
        assert abs(raw.pexpiretime(key) - int(later.expires_at.timestamp() * 1000)) < 5
        assert raw.get(key) == "2"
    finally:
        raw.close()
        await store.close()


async def test_a_session_made_before_epochs_counts_as_current_until_revoked(redis_server):
    """A rolling upgrade: an old worker stores sessions with no epoch field. They must
    keep working beside the new workers, whatever the user's epoch, and still end on
    the next revocation."""
    store = RedisSessionStore.from_url(
        redis_server.url, key_prefix=redis_server.prefix, timeout_s=3.0
    )
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        legacy, kept = make_session(), make_session()
        user_id = legacy.user_id
        kept = replace(kept, user_id=user_id)
        await store.revoke_all(user_id)  # the user was logged out everywhere once
        for session in (legacy, kept):
            assert await store.create(replace(session, epoch=1))
            raw.hdel(store.key(user_id, session.id), "epoch")  # as the old version wrote it
        assert await store.exists(user_id, legacy.id)
        assert await store.get(user_id, legacy.id) == replace(legacy, epoch=1)
        assert {s.id for s in await store.list_for_user(user_id)} == {legacy.id, kept.id}
        assert await use(store, legacy, A) is RefreshUse.CURRENT
        assert await store.revoke_all(user_id, keep=kept.id) == 1
        assert not await store.exists(user_id, legacy.id)
        assert await store.get(user_id, kept.id) == replace(kept, epoch=2)  # re-stamped
    finally:
        raw.close()
        await store.close()
