"""Account rules on real stores (the embedded one, and Redis for the counters): equal
hash work for every login refusal, and limits that hold under parallel guesses."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid

import pytest

from authsvc.core.accounts import AccountService
from authsvc.core.clock import utc_now
from authsvc.core.errors import Busy, InvalidInput
from authsvc.core.passwords import PasswordHasher
from authsvc.core.ratelimits import Limit, RateLimited, RateLimiter, RateLimitPolicy
from authsvc.core.sessions import ClientInfo
from authsvc.core.validation import PasswordPolicy
from authsvc.stores import sqlite
from authsvc.stores.redis import RedisConfig, RedisCounterStore, open_client
from authsvc.stores.redis import close as close_redis
from tests.core.conftest import work
from tests.helpers import open_migrated_sqlite


@pytest.fixture
def store(io_loop, tmp_path):
    db = open_migrated_sqlite(io_loop, tmp_path / "a.db")
    yield sqlite.SQLiteUserStore(db)
    io_loop.run_sync(db.close)


@pytest.fixture(params=["redis", "sqlite"])
def counters(request, io_loop, store, redis_server):
    """The rate-limit counters on Redis, then on the embedded file."""
    if request.param == "sqlite":
        yield sqlite.SQLiteCounterStore(store._db)
        return
    client = io_loop.run_sync(lambda: open_client(RedisConfig(redis_server.url, 3.0)))
    prefix = f"{redis_server.prefix}{uuid.uuid4().hex[:8]}:"
    yield RedisCounterStore(client, key_prefix=prefix, timeout_s=3.0)
    io_loop.run_sync(lambda: close_redis(client))


NO_LIMITS = RateLimitPolicy(*([Limit.parse("off")] * 6))


LONG_WINDOW = Limit(100, 3600)


def policy(failures: str = "off", streak: Limit = LONG_WINDOW) -> RateLimitPolicy:
    return RateLimitPolicy(
        login_failures_per_account=Limit.parse(failures),
        login_attempts_per_ip=Limit.parse("off"),
        registrations_per_ip=Limit.parse("off"),
        refreshes_per_session=Limit.parse("off"),
        password_changes_per_account=Limit.parse("off"),
        consecutive_failures=streak,
    )


def accounts(store, hasher, email_confirmation=False, limits=NO_LIMITS, counters=None):
    return AccountService(
        store,
        sqlite.SQLiteSessionStore(store._db),
        hasher,
        utc_now,
        RateLimiter(counters or sqlite.SQLiteCounterStore(store._db), utc_now, limits),
        policy=PasswordPolicy(min_length=8),
        email_confirmation=email_confirmation,
    )


@pytest.mark.parametrize("stored_cost", [4, 5, 6])
async def test_every_login_refusal_costs_one_hash_at_the_configured_cost(
    store, bcrypt_work, stored_cost
):
    """Whatever the account's hash cost (one imported from the Node service, or made
    before BCRYPT_ROUNDS was raised), every refusal does the work of one hash at the
    configured cost: the same as an unknown email, which is also the first login of
    this hasher (its decoy was made at start, not on first use)."""
    await accounts(store, PasswordHasher(rounds=stored_cost, threads=1)).create_user(
        "a@example.com", "gravel-lantern"
    )
    await accounts(store, PasswordHasher(rounds=stored_cost, threads=1)).create_user(
        "d@example.com", "gravel-lantern"
    )
    disabled = await store.get_by_email("d@example.com")
    await store._db.execute("UPDATE users SET disabled = 1 WHERE id = ?", (disabled.id,))
    hasher = PasswordHasher(rounds=6, threads=1)
    service = accounts(store, hasher)
    attempts = [
        ("nobody@example.com", "gravel-lantern"),  # unknown email, the first login
        ("a@example.com", "wrong-password"),  # wrong password
        ("d@example.com", "gravel-lantern"),  # disabled account, right password
        ("a@example.com", "p" * 80),  # longer than bcrypt reads
        ("nobody@example.com", "gravel-lantern"),  # unknown email again
    ]
    for email, password in attempts:
        bcrypt_work.clear()
        with pytest.raises(InvalidInput) as refused:
            await service.check_credentials(email, password, "127.0.0.1")
        assert work(bcrypt_work) == 2**6, (email, bcrypt_work)
        assert [(e.path, e.message) for e in refused.value.errors] == [("email", "invalid login")]
    assert "hashpw" not in {name for name, _ in bcrypt_work}
    hasher.close()


async def test_a_wrong_password_on_a_cheaper_hash_takes_as_long_as_an_unknown_email(store):
    """Measured: the CPU time of the whole login (every thread of this process), the
    hash of cost 6 against BCRYPT_ROUNDS 10. Before, it took 1/16 of the time."""
    await accounts(store, PasswordHasher(rounds=6, threads=1)).create_user(
        "cheap@example.com", "gravel-lantern"
    )
    hasher = PasswordHasher(rounds=10, threads=1)
    service = accounts(store, hasher)

    async def cpu_seconds(email: str) -> float:
        started = time.process_time()
        with pytest.raises(InvalidInput):
            await service.check_credentials(email, "wrong-password", "127.0.0.1")
        return time.process_time() - started

    cheap, unknown = [], []
    for _ in range(5):
        cheap.append(await cpu_seconds("cheap@example.com"))
        unknown.append(await cpu_seconds("nobody@example.com"))
    ratio = statistics.median(cheap) / statistics.median(unknown)
    assert 0.75 < ratio < 1.33, (cheap, unknown)
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
    ).user.id == user.id
    hasher.close()


@pytest.mark.parametrize(("stored", "configured"), [(4, 5), (5, 4)])
async def test_a_hash_of_other_rounds_is_replaced_at_the_next_login(store, stored, configured):
    """Fewer rounds, and more too (BCRYPT_ROUNDS lowered): every hash comes to cost what
    the settings say, as Django's must_update does."""
    old = PasswordHasher(rounds=stored, threads=1)
    await accounts(store, old).register("r@example.com", "gravel-lantern", "127.0.0.1")
    assert (await store.get_by_email("r@example.com")).password_hash.startswith(f"$2b$0{stored}$")
    new = PasswordHasher(rounds=configured, threads=1)
    service = accounts(store, new)
    with pytest.raises(InvalidInput):  # a failed login changes nothing
        await service.check_credentials("r@example.com", "wrong-password", "127.0.0.1")
    assert (await store.get_by_email("r@example.com")).password_hash.startswith(f"$2b$0{stored}$")
    await service.check_credentials("r@example.com", "gravel-lantern", "127.0.0.1")
    stored_hash = (await store.get_by_email("r@example.com")).password_hash
    assert stored_hash.startswith(f"$2b$0{configured}$")
    assert await new.verify("gravel-lantern", stored_hash)
    old.close()
    new.close()


async def test_a_refused_attempt_hashes_nothing(store, bcrypt_work):
    hasher = PasswordHasher(rounds=4, threads=1)
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
    for _ in range(2):
        with pytest.raises(InvalidInput):
            await service.check_credentials("h@example.com", "wrong-password", "10.0.0.1")
    bcrypt_work.clear()
    with pytest.raises(RateLimited):
        await service.check_credentials("h@example.com", "gravel-lantern", "10.0.0.1")
    with pytest.raises(RateLimited):
        await service.register("i@example.com", "gravel-lantern", "10.0.0.1")
    assert bcrypt_work == []  # refused before any hashing
    assert await store.get_by_email("i@example.com") is None  # and before any write
    hasher.close()


class GatedHasher(PasswordHasher):
    """Holds every password check until ``gate`` opens, as a slow hash would, and
    records the passwords it was asked to check (the passwords evaluated)."""

    def __init__(self) -> None:
        super().__init__(rounds=4, threads=2, max_pending=100)
        self.gate = asyncio.Event()
        self.evaluated: list[str] = []

    async def verify(self, password: str, hashed: str) -> bool:
        self.evaluated.append(password)
        await self.gate.wait()
        return await super().verify(password, hashed)


async def until(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_parallel_guesses_evaluate_no_more_passwords_than_the_limit(store, counters):
    """19 wrong guesses in flight against 10/900, then the right password: 10 guesses
    are evaluated, 9 refused before any hash, and the right password is refused too
    (the attempts in flight hold every place). Before, every attempt passed the check
    while none had been counted, and the right password logged in."""
    hasher = GatedHasher()
    service = accounts(store, hasher, limits=policy("10/900"), counters=counters)
    await service.create_user("p@example.com", "gravel-lantern")
    guesses = [
        asyncio.ensure_future(service.check_credentials("p@example.com", f"guess-{i}", "::1"))
        for i in range(19)
    ]
    await until(lambda: len(hasher.evaluated) + sum(g.done() for g in guesses) == 19)
    right = service.check_credentials("p@example.com", "gravel-lantern", "::1")
    try:
        with pytest.raises(RateLimited):  # at once: no gate on the way
            await asyncio.wait_for(right, 5)
    finally:
        hasher.gate.set()
    results = await asyncio.gather(*guesses, return_exceptions=True)
    assert len(hasher.evaluated) == 10
    assert sorted(type(r).__name__ for r in results) == ["InvalidInput"] * 10 + ["RateLimited"] * 9
    hasher.close()


async def test_attempts_that_tried_no_password_are_given_back(store, counters):
    """A hash given up as busy, or a refusal by the long window, evaluated no password:
    it does not use up the account's short window."""

    class GivingUpHasher(PasswordHasher):
        async def verify(self, password: str, hashed: str) -> bool:
            raise Busy(retry_after_s=1)

    limits = policy("2/900", streak=Limit(3, 3600))
    await accounts(store, PasswordHasher(rounds=4, threads=1)).create_user(
        "g@example.com", "gravel-lantern"
    )
    busy = accounts(store, GivingUpHasher(rounds=4, threads=1), limits=limits, counters=counters)
    for _ in range(5):
        with pytest.raises(Busy):
            await busy.check_credentials("g@example.com", "gravel-lantern", "10.0.0.1")
    hasher = PasswordHasher(rounds=4, threads=1)
    service = accounts(store, hasher, limits=limits, counters=counters)
    await service.check_credentials("g@example.com", "gravel-lantern", "10.0.0.1")
    # Three failures in a row from three addresses: the long window is used up.
    for address in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        with pytest.raises(InvalidInput):
            await service.check_credentials("g@example.com", "wrong-password", address)
    for _ in range(3):
        with pytest.raises(RateLimited):
            await service.check_credentials("g@example.com", "gravel-lantern", "10.0.0.5")
    # 10.0.0.5 used none of its short window: once the streak ends, it has two tries.
    await RateLimiter(counters, utc_now, limits).reset("login-streak", "g@example.com")
    for _ in range(2):
        with pytest.raises(InvalidInput):
            await service.check_credentials("g@example.com", "wrong-password", "10.0.0.5")
    with pytest.raises(RateLimited):
        await service.check_credentials("g@example.com", "gravel-lantern", "10.0.0.5")
    hasher.close()


async def test_the_first_unknown_email_after_start_costs_one_hash(io_loop, services, settings,
                                                                  bcrypt_work):  # fmt: skip
    """The decoy hashes exist once the services are open: the first login for an
    unknown email (which took twice a hash before, making the decoy) costs one."""
    with pytest.raises(InvalidInput):
        await services.sessions.login("nobody@example.com", "gravel-lantern", ClientInfo())
    assert bcrypt_work == [("checkpw", settings.bcrypt_rounds)]
