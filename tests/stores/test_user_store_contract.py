"""The UserStore contract, run against MariaDB and SQLite."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from authsvc.stores.base import DuplicateEmail, User
from tests.helpers import new_email


def make_user(email: str | None = None) -> User:
    now = datetime(2026, 11, 26, 15, 12, 11, 877000, tzinfo=UTC)
    return User(
        id=str(uuid.uuid4()),
        email=email or new_email(),
        password_hash="$2b$04$" + "x" * 53,
        confirmed=True,
        disabled=False,
        created_at=now,
        updated_at=now + timedelta(seconds=1),
    )


async def test_create_then_get_by_id_and_email(user_store):
    user = make_user()
    await user_store.create(user)
    assert await user_store.get(user.id) == user
    assert await user_store.get_by_email(user.email) == user


async def test_unknown_user_is_none(user_store):
    assert await user_store.get(str(uuid.uuid4())) is None
    assert await user_store.get_by_email(new_email()) is None


async def test_flags_round_trip(user_store):
    user = replace(make_user(), confirmed=False, disabled=True)
    await user_store.create(user)
    stored = await user_store.get(user.id)
    assert stored is not None and stored.confirmed is False and stored.disabled is True


async def test_set_confirmed_confirms_and_stamps(user_store):
    user = replace(make_user(), confirmed=False)
    await user_store.create(user)
    later = user.updated_at + timedelta(minutes=5)
    assert await user_store.set_confirmed(user.id, later) is True
    stored = await user_store.get(user.id)
    assert stored is not None and stored.confirmed is True and stored.updated_at == later
    assert await user_store.set_confirmed(str(uuid.uuid4()), later) is False


async def test_duplicate_email_is_refused_and_first_row_kept(user_store):
    first = make_user()
    await user_store.create(first)
    with pytest.raises(DuplicateEmail):
        await user_store.create(make_user(first.email))
    assert await user_store.get_by_email(first.email) == first


async def test_emails_compare_exactly_as_stored(user_store):
    # The store keeps what it is given; lower-casing is the core's rule, and the index
    # must not fold accents (josé and jose are two people).
    jose = make_user("jose@example.com")
    await user_store.create(jose)
    await user_store.create(make_user("josé@example.com"))
    assert await user_store.get_by_email("jose@example.com") == jose


async def test_concurrent_creates_of_one_email_have_one_winner(user_store):
    email = new_email()
    results = await asyncio.gather(
        *(user_store.create(make_user(email)) for _ in range(20)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, DuplicateEmail) for r in results if r is not None)


async def test_list_pages_oldest_first_and_delete(user_store):
    first, second = make_user(), make_user()
    second = replace(second, created_at=first.created_at.replace(year=2027))
    await user_store.create(first)
    await user_store.create(second)
    listed = await user_store.list(limit=10_000)
    ids = [u.id for u in listed]
    assert ids.index(first.id) < ids.index(second.id)
    assert len(await user_store.list(limit=1)) == 1
    assert await user_store.delete(first.id)
    assert not await user_store.delete(first.id)
    assert await user_store.get(first.id) is None
    assert await user_store.get(second.id) == second


async def test_a_hash_is_replaced_only_over_the_one_it_replaces(user_store):
    """A login's rehash names the hash it checked: a password changed meanwhile stays."""
    user = make_user()
    await user_store.create(user)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    changed = "$2b$04$" + "c" * 53
    assert await user_store.set_password_hash(user.id, changed, now)
    rehashed = "$2b$04$" + "r" * 53
    assert not await user_store.set_password_hash(
        user.id, rehashed, now, replacing=user.password_hash
    )
    assert (await user_store.get(user.id)).password_hash == changed
    assert await user_store.set_password_hash(user.id, rehashed, now, replacing=changed)
    assert (await user_store.get(user.id)).password_hash == rehashed
