"""The SessionStore contract, run against Redis and SQLite."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from authsvc.stores.base import LimitReached, RefreshUse, Session, UseLimit
from authsvc.stores.redis import RedisSessionStore

A, B, C = "a" * 64, "b" * 64, "c" * 64


def make_session(expires_in_s: float = 3600, user_id: str | None = None) -> Session:
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # stores keep ms
    return Session(
        id=uuid.uuid4().hex,
        user_id=user_id or str(uuid.uuid4()),
        refresh_jti_hash=A,
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


def use(
    store, session, presented, *, rotate_to=None, now=None, grace_s=10.0, idle_s=0.0, limit=None
):
    return store.use_refresh(
        session.user_id,
        session.id,
        presented,
        rotate_to=rotate_to,
        now=now or datetime.now(UTC),
        grace_s=grace_s,
        idle_timeout_s=idle_s,
        limit=limit,
    )


async def test_current_token_is_accepted_and_the_use_recorded(session_store):
    session = make_session()
    await session_store.create(session)
    later = session.created_at + timedelta(seconds=5)
    assert await use(session_store, session, A, now=later) is RefreshUse.CURRENT
    stored = await session_store.get(session.user_id, session.id)
    assert stored is not None and stored.last_used_at == later
    assert stored.refresh_jti_hash == A  # no rotation asked


async def test_unknown_token_of_a_session_revokes_it(session_store):
    session = make_session()
    await session_store.create(session)
    assert await use(session_store, session, B) is RefreshUse.REUSED
    assert await session_store.get(session.user_id, session.id) is None
    assert await use(session_store, session, A) is RefreshUse.MISSING


async def test_rotation_makes_the_parent_spent(session_store):
    session = make_session()
    await session_store.create(session)
    assert await use(session_store, session, A, rotate_to=B) is RefreshUse.CURRENT
    stored = await session_store.get(session.user_id, session.id)
    assert stored is not None
    assert (stored.refresh_jti_hash, stored.parent_jti_hash) == (B, A)
    assert stored.rotated_at is not None
    assert await use(session_store, session, B, rotate_to=C) is RefreshUse.CURRENT


async def test_parent_inside_the_grace_window_is_accepted_and_changes_nothing(session_store):
    session = make_session()
    await session_store.create(session)
    now = datetime.now(UTC)
    await use(session_store, session, A, rotate_to=B, now=now)
    retry = now + timedelta(seconds=9)
    assert await use(session_store, session, A, now=retry, rotate_to=C) is RefreshUse.GRACE
    stored = await session_store.get(session.user_id, session.id)
    assert stored is not None and stored.refresh_jti_hash == B  # the retry rotated nothing
    assert await use(session_store, session, B, now=retry) is RefreshUse.CURRENT


async def test_parent_after_the_grace_window_revokes(session_store):
    session = make_session()
    await session_store.create(session)
    now = datetime.now(UTC)
    await use(session_store, session, A, rotate_to=B, now=now)
    late = now + timedelta(seconds=11)
    assert await use(session_store, session, A, now=late) is RefreshUse.REUSED
    assert await use(session_store, session, B, now=late) is RefreshUse.MISSING


async def test_grandparent_inside_the_grace_window_revokes(session_store):
    session = make_session()
    await session_store.create(session)
    now = datetime.now(UTC)
    await use(session_store, session, A, rotate_to=B, now=now)
    await use(session_store, session, B, rotate_to=C, now=now)
    assert await use(session_store, session, A, now=now) is RefreshUse.REUSED
    assert await session_store.get(session.user_id, session.id) is None


async def test_idle_session_ends(session_store):
    session = make_session()
    await session_store.create(session)
    soon = session.last_used_at + timedelta(seconds=30)
    assert await use(session_store, session, A, now=soon, idle_s=60) is RefreshUse.CURRENT
    late = soon + timedelta(seconds=61)
    assert await use(session_store, session, A, now=late, idle_s=60) is RefreshUse.MISSING
    assert await session_store.get(session.user_id, session.id) is None


async def test_parallel_rotations_of_one_token_have_one_winner(session_store):
    session = make_session()
    await session_store.create(session)
    results = await asyncio.gather(
        *(use(session_store, session, A, rotate_to=B) for _ in range(50))
    )
    assert results.count(RefreshUse.CURRENT) == 1
    assert results.count(RefreshUse.GRACE) == 49
    stored = await session_store.get(session.user_id, session.id)
    assert stored is not None and stored.refresh_jti_hash == B


async def test_list_and_delete_all_of_a_user(session_store):
    user_id = str(uuid.uuid4())
    first, second, third = (make_session(user_id=user_id) for _ in range(3))
    other = make_session()
    for session in (first, second, third, other):
        await session_store.create(session)
    listed = await session_store.list_for_user(user_id)
    assert {s.id for s in listed} == {first.id, second.id, third.id}
    assert await session_store.delete(user_id, second.id)
    assert {s.id for s in await session_store.list_for_user(user_id)} == {first.id, third.id}
    assert await session_store.revoke_all(user_id, keep=first.id) == 1
    assert [s.id for s in await session_store.list_for_user(user_id)] == [first.id]
    assert await session_store.revoke_all(user_id) == 1
    assert await session_store.list_for_user(user_id) == []
    assert await session_store.get(other.user_id, other.id) == other


async def test_expired_sessions_are_not_listed(session_store):
    user_id = str(uuid.uuid4())
    live, expired = make_session(user_id=user_id), make_session(-1, user_id=user_id)
    await session_store.create(live)
    await session_store.create(expired)
    assert [s.id for s in await session_store.list_for_user(user_id)] == [live.id]


async def test_delete_is_for_good_and_only_once(session_store):
    session = make_session()
    await session_store.create(session)
    assert await session_store.delete(session.user_id, session.id)
    assert not await session_store.delete(session.user_id, session.id)
    assert await session_store.get(session.user_id, session.id) is None
    assert await use(session_store, session, A) is RefreshUse.MISSING


async def test_expired_session_is_gone(session_store):
    session = make_session(expires_in_s=-1)
    await session_store.create(session)
    assert await session_store.get(session.user_id, session.id) is None
    assert await use(session_store, session, A) is RefreshUse.MISSING
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


async def test_use_racing_delete_never_revives(session_store):
    session = make_session()
    await session_store.create(session)
    calls = [use(session_store, session, A) for _ in range(10)]
    calls.insert(5, session_store.delete(session.user_id, session.id))
    await asyncio.gather(*calls)
    assert await session_store.get(session.user_id, session.id) is None


async def test_exists_follows_the_session(session_store):
    session = make_session()
    assert not await session_store.exists(session.user_id, session.id)
    await session_store.create(session)
    assert await session_store.exists(session.user_id, session.id)
    assert not await session_store.exists(str(uuid.uuid4()), session.id)  # other user
    await session_store.delete(session.user_id, session.id)
    assert not await session_store.exists(session.user_id, session.id)
    expired = make_session(expires_in_s=-1)
    await session_store.create(expired)
    assert not await session_store.exists(expired.user_id, expired.id)


async def test_concurrent_uses_of_many_sessions_each_get_their_own_outcome(session_store):
    """Uses issued together (Redis sends them in one pipeline) keep their own answers."""
    sessions = [make_session() for _ in range(30)]
    for session in sessions:
        await session_store.create(session)
    await session_store.delete(sessions[0].user_id, sessions[0].id)
    presented = [C if i % 3 == 1 else A for i in range(30)]  # C: an unknown token
    results = await asyncio.gather(
        *(use(session_store, s, p) for s, p in zip(sessions, presented, strict=True)),
        *(session_store.exists(s.user_id, s.id) for s in sessions),
    )
    uses, exists = results[:30], results[30:]
    for i, outcome in enumerate(uses):
        expected = (
            RefreshUse.MISSING
            if i == 0
            else RefreshUse.REUSED
            if presented[i] == C
            else RefreshUse.CURRENT
        )
        assert outcome is expected, i
    # Each check ran against the state its own turn saw: deleted or revoked is gone.
    assert exists[0] is False
    for i in range(1, 30):
        assert await session_store.exists(sessions[i].user_id, sessions[i].id) == (
            presented[i] == A
        )
    assert all(isinstance(e, bool) for e in exists)


async def test_uses_past_the_limit_are_refused_and_change_nothing(session_store):
    session = make_session()
    await session_store.create(session)
    limit = UseLimit(2, 60)
    first = session.created_at + timedelta(seconds=1)
    before = datetime.now(UTC)  # the window starts with the first counted use
    assert await use(session_store, session, A, now=first, limit=limit) is RefreshUse.CURRENT
    assert await use(session_store, session, A, now=first, limit=limit) is RefreshUse.CURRENT
    later = first + timedelta(seconds=5)
    with pytest.raises(LimitReached) as refused:  # not rotated, not even recorded
        await use(session_store, session, A, rotate_to=B, now=later, limit=limit)
    after = datetime.now(UTC)
    resets_at = refused.value.resets_at
    assert before + timedelta(seconds=59) < resets_at <= after + timedelta(seconds=60)
    with pytest.raises(LimitReached):  # an unknown token is not judged either: no revocation
        await use(session_store, session, C, now=later, limit=limit)
    stored = await session_store.get(session.user_id, session.id)
    assert stored is not None and stored.refresh_jti_hash == A and stored.last_used_at == first
    assert await use(session_store, session, A) is RefreshUse.CURRENT  # no limit: judged


async def test_the_limit_counts_per_session_and_only_when_asked(session_store):
    user_id = str(uuid.uuid4())
    one, other = make_session(user_id=user_id), make_session(user_id=user_id)
    await session_store.create(one)
    await session_store.create(other)
    for _ in range(3):  # without a limit nothing is counted
        assert await use(session_store, one, A) is RefreshUse.CURRENT
    limit = UseLimit(1, 60)
    assert await use(session_store, one, A, limit=limit) is RefreshUse.CURRENT
    with pytest.raises(LimitReached):
        await use(session_store, one, A, limit=limit)
    assert await use(session_store, other, A, limit=limit) is RefreshUse.CURRENT


async def test_a_use_limit_window_ends(session_store):
    session = make_session()
    await session_store.create(session)
    limit = UseLimit(1, 0.3)
    assert await use(session_store, session, A, limit=limit) is RefreshUse.CURRENT
    with pytest.raises(LimitReached):
        await use(session_store, session, A, limit=limit)
    await asyncio.sleep(0.45)
    assert await use(session_store, session, A, limit=limit) is RefreshUse.CURRENT


async def test_concurrent_limited_uses_have_exactly_max_winners(session_store):
    session = make_session()
    await session_store.create(session)
    results = await asyncio.gather(
        *(use(session_store, session, A, limit=UseLimit(5, 60)) for _ in range(12)),
        return_exceptions=True,
    )
    assert results.count(RefreshUse.CURRENT) == 5
    assert sum(isinstance(r, LimitReached) for r in results) == 7


# Revocation epochs (DESIGN §6): the bump is the moment of revocation.


async def bump_only(store, user_id: str) -> None:
    """Bump the user's epoch and delete nothing: a revocation cut short between its two
    steps (revoke_all's bump and its deletes), as a crash or the Redis window would
    leave it. Reaches into the adapter's own storage, on purpose."""
    if isinstance(store, RedisSessionStore):
        await store.client.incr(store.epoch_key(user_id))
    else:
        await store._db.execute(
            "INSERT INTO revocation_epochs (user_id, epoch) VALUES (?, 1)"
            " ON CONFLICT (user_id) DO UPDATE SET epoch = epoch + 1",
            (user_id,),
        )


async def test_the_epoch_is_0_until_a_revocation_bumps_it(session_store):
    user_id = str(uuid.uuid4())
    assert await session_store.epoch(user_id) == 0
    assert await session_store.revoke_all(user_id) == 0
    assert await session_store.epoch(user_id) == 1
    await session_store.revoke_all(user_id)
    assert await session_store.epoch(user_id) == 2
    assert await session_store.epoch(str(uuid.uuid4())) == 0  # per user


async def test_a_session_made_under_an_older_epoch_is_not_created(session_store):
    """The login in flight: it read epoch 0, a revocation bumped it meanwhile."""
    session = make_session()
    assert await session_store.epoch(session.user_id) == 0
    await session_store.revoke_all(session.user_id)
    assert await session_store.create(session) is False
    assert await session_store.get(session.user_id, session.id) is None
    assert not await session_store.exists(session.user_id, session.id)
    assert await session_store.list_for_user(session.user_id) == []
    assert await use(session_store, session, A) is RefreshUse.MISSING
    current = replace(session, epoch=1)
    assert await session_store.create(current) is True
    assert await session_store.get(session.user_id, session.id) == current


async def test_the_bump_alone_revokes_every_session_everywhere(session_store):
    """Sessions the revocation has not deleted yet are refused by every call."""
    user_id = str(uuid.uuid4())
    first, second = make_session(user_id=user_id), make_session(user_id=user_id)
    other = make_session()
    for session in (first, second, other):
        assert await session_store.create(session) is True
    await bump_only(session_store, user_id)
    assert await session_store.get(user_id, first.id) is None
    assert not await session_store.exists(user_id, first.id)
    assert await session_store.list_for_user(user_id) == []
    assert await use(session_store, first, A) is RefreshUse.MISSING
    assert await use(session_store, second, A, rotate_to=B) is RefreshUse.MISSING
    assert await session_store.exists(other.user_id, other.id)  # another user's: untouched
    await session_store.revoke_all(user_id)  # the rest of the revocation tidies up
    assert await session_store.list_for_user(user_id) == []


async def test_revoke_all_restamps_the_kept_session(session_store):
    user_id = str(uuid.uuid4())
    kept, ended = make_session(user_id=user_id), make_session(user_id=user_id)
    await session_store.create(kept)
    await session_store.create(ended)
    assert await session_store.revoke_all(user_id, keep=kept.id) == 1
    assert await session_store.exists(user_id, kept.id)
    stored = await session_store.get(user_id, kept.id)
    assert stored == replace(kept, epoch=1)
    assert await use(session_store, kept, A, rotate_to=B) is RefreshUse.CURRENT
    assert await use(session_store, ended, A) is RefreshUse.MISSING
    assert [s.id for s in await session_store.list_for_user(user_id)] == [kept.id]


async def test_a_kept_session_of_an_older_epoch_stays_revoked(session_store):
    """Only a live session is carried over: keep cannot revive a revoked one."""
    session = make_session()
    await session_store.create(session)
    await bump_only(session_store, session.user_id)
    await session_store.revoke_all(session.user_id, keep=session.id)
    assert not await session_store.exists(session.user_id, session.id)
    assert await use(session_store, session, A) is RefreshUse.MISSING


async def test_sessions_made_after_a_revocation_are_left_alone(session_store):
    user_id = str(uuid.uuid4())
    before = make_session(user_id=user_id)
    await session_store.create(before)
    await session_store.revoke_all(user_id)
    after = replace(make_session(user_id=user_id), epoch=await session_store.epoch(user_id))
    assert await session_store.create(after) is True
    assert await use(session_store, after, A) is RefreshUse.CURRENT
    assert [s.id for s in await session_store.list_for_user(user_id)] == [after.id]


async def test_creates_and_uses_racing_a_revocation_never_survive_it(session_store):
    """Logins that read the epoch before the revocation and renewals in flight, all at
    once with it: whatever order they run in, none of their sessions is left."""
    user_id = str(uuid.uuid4())
    live = [make_session(user_id=user_id) for _ in range(10)]
    for session in live:
        await session_store.create(session)
    epoch = await session_store.epoch(user_id)
    late = [replace(make_session(user_id=user_id), epoch=epoch) for _ in range(10)]
    calls = [session_store.create(s) for s in late]
    calls += [use(session_store, s, A, rotate_to=B) for s in live]
    calls.insert(7, session_store.revoke_all(user_id))
    await asyncio.gather(*calls)
    assert await session_store.list_for_user(user_id) == []
    for session in live + late:
        assert not await session_store.exists(user_id, session.id)
        assert await use(session_store, session, B) is RefreshUse.MISSING
