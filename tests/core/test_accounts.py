"""Account rules on a real (embedded) store: equal hash work for every login refusal."""

from __future__ import annotations

import pytest

from authsvc.core.accounts import AccountService
from authsvc.core.clock import utc_now
from authsvc.core.errors import InvalidInput
from authsvc.core.passwords import PasswordHasher
from authsvc.core.ratelimits import Limit, RateLimited, RateLimiter, RateLimitPolicy
from authsvc.core.validation import PasswordPolicy
from authsvc.stores import sqlite
from tests.helpers import open_migrated_sqlite


class CountingHasher(PasswordHasher):
    """Counts bcrypt operations, the work a login costs (no behaviour is changed)."""

    def __init__(self) -> None:
        super().__init__(rounds=4, threads=1)
        self.operations = 0

    async def _run(self, fn, *args):
        self.operations += 1
        return await super()._run(fn, *args)


@pytest.fixture
def store(io_loop, tmp_path):
    db = open_migrated_sqlite(io_loop, tmp_path / "a.db")
    yield sqlite.SQLiteUserStore(db)
    io_loop.run_sync(db.close)


NO_LIMITS = RateLimitPolicy(*([Limit.parse("off")] * 6))


def accounts(store, hasher, email_confirmation=False, limits=NO_LIMITS):
    return AccountService(
        store,
        sqlite.SQLiteSessionStore(store._db),
        hasher,
        utc_now,
        RateLimiter(sqlite.SQLiteCounterStore(store._db), utc_now, limits),
        policy=PasswordPolicy(min_length=8),
        email_confirmation=email_confirmation,
    )


async def test_every_login_refusal_costs_one_hash_and_says_the_same(store):
    hasher = CountingHasher()
    service = accounts(store, hasher)
    await service.register("a@example.com", "gravel-lantern", "127.0.0.1")
    disabled = await service.register("d@example.com", "gravel-lantern", "127.0.0.1")
    await store._db.execute("UPDATE users SET disabled = 1 WHERE id = ?", (disabled.id,))
    await hasher.burn()  # the decoy hash is made once, on first use: not counted below
    attempts = [
        ("nobody@example.com", "gravel-lantern"),  # unknown email
        ("a@example.com", "wrong-password"),  # wrong password
        ("d@example.com", "gravel-lantern"),  # disabled account
        ("a@example.com", "p" * 80),  # longer than bcrypt reads
    ]
    for email, password in attempts:
        before = hasher.operations
        with pytest.raises(InvalidInput) as refused:
            await service.check_credentials(email, password, "127.0.0.1")
        assert hasher.operations - before == 1, email
        assert [(e.path, e.message) for e in refused.value.errors] == [("email", "invalid login")]
    hasher.close()


async def test_unconfirmed_account_is_refused_only_when_confirmation_is_on(store):
    hasher = PasswordHasher(rounds=4, threads=1)
    service = accounts(store, hasher, email_confirmation=True)
    user = await service.register("c@example.com", "gravel-lantern", "127.0.0.1")
    assert user.confirmed is False
    with pytest.raises(InvalidInput):
        await service.check_credentials("c@example.com", "gravel-lantern", "127.0.0.1")
    open_service = accounts(store, hasher)
    assert (
        await open_service.check_credentials("c@example.com", "gravel-lantern", "127.0.0.1")
    ).id == user.id
    hasher.close()


async def test_a_hash_of_fewer_rounds_is_replaced_at_the_next_login(store):
    old = PasswordHasher(rounds=4, threads=1)
    await accounts(store, old).register("r@example.com", "gravel-lantern", "127.0.0.1")
    assert (await store.get_by_email("r@example.com")).password_hash.startswith("$2b$04$")
    new = PasswordHasher(rounds=5, threads=1)
    service = accounts(store, new)
    with pytest.raises(InvalidInput):  # a failed login changes nothing
        await service.check_credentials("r@example.com", "wrong-password", "127.0.0.1")
    assert (await store.get_by_email("r@example.com")).password_hash.startswith("$2b$04$")
    await service.check_credentials("r@example.com", "gravel-lantern", "127.0.0.1")
    stored = await store.get_by_email("r@example.com")
    assert stored.password_hash.startswith("$2b$05$")
    assert await new.verify("gravel-lantern", stored.password_hash)
    old.close()
    new.close()


async def test_a_refused_attempt_hashes_nothing(store):
    hasher = CountingHasher()
    limits = RateLimitPolicy(
        login_failures_per_account=Limit.parse("2/60"),
        login_attempts_per_ip=Limit.parse("off"),
        registrations_per_ip=Limit.parse("1/60"),
        refreshes_per_session=Limit.parse("off"),
        password_changes_per_account=Limit.parse("off"),
        consecutive_failures=Limit(100, 3600),
    )
    service = accounts(store, hasher, limits=limits)
    await service.register("h@example.com", "gravel-lantern", "10.0.0.1")
    await hasher.burn()
    for _ in range(2):
        with pytest.raises(InvalidInput):
            await service.check_credentials("h@example.com", "wrong-password", "10.0.0.1")
    before = hasher.operations
    with pytest.raises(RateLimited):
        await service.check_credentials("h@example.com", "gravel-lantern", "10.0.0.1")
    with pytest.raises(RateLimited):
        await service.register("i@example.com", "gravel-lantern", "10.0.0.1")
    assert hasher.operations == before  # refused before any hashing
    assert await store.get_by_email("i@example.com") is None  # and before any write
    hasher.close()
