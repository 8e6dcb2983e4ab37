"""The SessionStore contract, run against Redis and SQLite."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from authsvc.stores.base import Session


def make_session(expires_in_s: float = 3600, user_id: str | None = None) -> Session:
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # stores keep ms
    return Session(
        id=uuid.uuid4().hex,
        user_id=user_id or str(uuid.uuid4()),
        refresh_jti_hash="a" * 64,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=expires_in_s),
        user_agent="curl/8",
        ip="127.0.0.1",
    )


async def test_create_then_get(session_store):
    session = make_session()
    await session_store.create(session)
    assert await session_store.get(session.user_id, session.id) == session


async def test_unknown_session_is_none(session_store):
    assert await session_store.get(str(uuid.uuid4()), uuid.uuid4().hex) is None


async def test_session_is_found_only_under_its_user(session_store):
    session = make_session()
    await session_store.create(session)
    assert await session_store.get(str(uuid.uuid4()), session.id) is None
    assert not await session_store.delete(str(uuid.uuid4()), session.id)


async def test_touch_needs_the_current_jti_and_records_the_time(session_store):
    session = make_session()
    await session_store.create(session)
    later = session.created_at + timedelta(seconds=5)
    assert not await session_store.touch(session.user_id, session.id, "b" * 64, later)
    assert await session_store.touch(session.user_id, session.id, "a" * 64, later)
    stored = await session_store.get(session.user_id, session.id)
    assert stored is not None and stored.last_used_at == later


async def test_delete_is_for_good_and_only_once(session_store):
    session = make_session()
    await session_store.create(session)
    assert await session_store.delete(session.user_id, session.id)
    assert not await session_store.delete(session.user_id, session.id)
    assert await session_store.get(session.user_id, session.id) is None
    now = datetime.now(UTC)
    assert not await session_store.touch(session.user_id, session.id, "a" * 64, now)


async def test_expired_session_is_gone(session_store):
    session = make_session(expires_in_s=-1)
    await session_store.create(session)
    assert await session_store.get(session.user_id, session.id) is None
    now = datetime.now(UTC)
    assert not await session_store.touch(session.user_id, session.id, "a" * 64, now)
    assert not await session_store.delete(session.user_id, session.id)


async def test_session_expires_at_its_end(session_store):
    session = make_session(expires_in_s=0.5)
    await session_store.create(session)
    assert await session_store.get(session.user_id, session.id) is not None
    await asyncio.sleep(0.7)
    assert await session_store.get(session.user_id, session.id) is None


async def test_concurrent_deletes_have_one_winner(session_store):
    session = make_session()
    await session_store.create(session)
    results = await asyncio.gather(
        *(session_store.delete(session.user_id, session.id) for _ in range(20))
    )
    assert results.count(True) == 1


async def test_touch_racing_delete_never_revives(session_store):
    session = make_session()
    await session_store.create(session)
    now = datetime.now(UTC)
    calls = [session_store.touch(session.user_id, session.id, "a" * 64, now) for _ in range(10)]
    calls.insert(5, session_store.delete(session.user_id, session.id))
    await asyncio.gather(*calls)
    assert await session_store.get(session.user_id, session.id) is None
