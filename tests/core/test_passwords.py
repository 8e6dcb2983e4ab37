"""bcrypt on a thread pool: correct answers, the loop stays free, equal work."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time

import bcrypt
import pytest

from authsvc.core.errors import Busy
from authsvc.core.hashing_pool import CALIBRATION_ROUNDS
from authsvc.core.passwords import HASHING_NICENESS, Caller, PasswordHasher, admit_as
from tests.core.conftest import work


async def test_hash_and_verify():
    hasher = PasswordHasher(rounds=4, threads=2)
    try:
        hashed = await hasher.hash("correct horse")
        assert hashed.startswith("$2b$04$")
        assert await hasher.verify("correct horse", hashed)
        assert not await hasher.verify("wrong horse", hashed)
        assert not await hasher.verify("x" * 100, hashed)  # bcrypt 5 would raise
        assert not await hasher.verify("correct horse", "not a bcrypt hash")
    finally:
        hasher.close()


async def test_rounds_are_configurable():
    hasher = PasswordHasher(rounds=5, threads=1)
    try:
        assert (await hasher.hash("pw")).startswith("$2b$05$")
    finally:
        hasher.close()


async def test_hashing_never_runs_on_the_event_loop(monkeypatch):
    loop_thread = threading.get_ident()
    seen: list[int] = []
    real_hashpw = bcrypt.hashpw

    def recording_hashpw(password: bytes, salt: bytes) -> bytes:
        seen.append(threading.get_ident())
        return real_hashpw(password, salt)

    monkeypatch.setattr(bcrypt, "hashpw", recording_hashpw)
    hasher = PasswordHasher(rounds=10, threads=2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    try:
        await asyncio.gather(hasher.hash("a"), hasher.hash("b"), hasher.burn())
    finally:
        task.cancel()
        hasher.close()
    assert seen and loop_thread not in seen
    assert ticks > 0  # the loop kept running while the hashes were computed


async def test_past_the_cap_on_requests_one_is_refused_at_once():
    """HASH_QUEUE_MAX, where set, caps the requests admitted beside the wait bound."""
    hasher = PasswordHasher(rounds=12, threads=1, max_pending=2, max_wait_s=30)
    try:
        slow = [asyncio.ensure_future(hasher.hash("pw")) for _ in range(2)]
        await asyncio.sleep(0)  # both are queued now
        with pytest.raises(Busy) as busy:
            await hasher.verify("pw", "$2b$12$" + "x" * 53)
        assert busy.value.status == 503 and busy.value.code == "BUSY"
        await asyncio.gather(*slow)
        assert hasher.pending == 0
        assert (await PasswordHasher(rounds=4, threads=1).hash("pw")).startswith("$2b$04$")
    finally:
        hasher.close()


async def test_an_admitted_request_holds_its_place_until_it_ends():
    hasher = PasswordHasher(rounds=4, threads=1, max_pending=2)
    try:
        gate = asyncio.Event()

        async def login() -> str:
            with hasher.admitted():
                await gate.wait()  # a lookup, a rate-limit check: no hash queued yet
                with hasher.admitted():  # nested (register -> create_user): no 2nd place
                    return await hasher.hash("pw")

        first = [asyncio.ensure_future(login()) for _ in range(2)]
        await asyncio.sleep(0)
        assert hasher.pending == 2  # both admitted before either queued a hash
        with pytest.raises(Busy), hasher.admitted():
            pass
        gate.set()
        assert all(h.startswith("$2b$04$") for h in await asyncio.gather(*first))
        assert hasher.pending == 0
        with pytest.raises(RuntimeError), hasher.admitted():  # a failure gives it back too
            raise RuntimeError("lookup failed")
        assert hasher.pending == 0
    finally:
        hasher.close()


async def test_hashing_threads_run_at_the_lowest_priority_unless_told():
    """Linux gives each thread its own nice value (the service's platform). HASH_NICENESS
    0 keeps the event loop's own."""
    loop = asyncio.get_running_loop()
    for niceness, expected in ((None, 19), (0, os.getpriority(os.PRIO_PROCESS, 0))):
        hasher = (
            PasswordHasher(rounds=4, threads=1)
            if niceness is None
            else PasswordHasher(rounds=4, threads=1, niceness=niceness)
        )
        try:
            await hasher.hash("pw")  # the thread exists now
            executor = hasher.pool.executor
            nice = await loop.run_in_executor(executor, os.getpriority, os.PRIO_PROCESS, 0)
            assert nice == expected
        finally:
            hasher.close()
    assert HASHING_NICENESS == 19
    assert os.getpriority(os.PRIO_PROCESS, 0) < 19  # the loop's thread is untouched


async def test_a_hash_that_gets_no_core_in_time_is_answered_busy():
    """A hash queued past twice the wait admission allows (and its own hash) is given
    up: here 2 x (0.1 + 0.01) s, so the least, a second."""
    hasher = PasswordHasher(rounds=12, threads=1, max_wait_s=0.1)
    try:
        hasher.backlog.hash_wall_seconds = 0.01  # as if hashes were quick
        assert hasher.backlog.deadline_s() == 1.0
        sleep = hasher.pool.run(time.sleep, 1.5, measured=False)  # type: ignore[arg-type]
        blocker = asyncio.ensure_future(sleep)
        await asyncio.sleep(0)  # it has the thread
        started = time.monotonic()
        with pytest.raises(Busy) as busy:
            await hasher.hash("pw")
        assert 0.9 < time.monotonic() - started < 1.4
        assert (busy.value.retry_after_s or 0) >= 1
        assert hasher.pending == 1  # the blocker's place only
        await blocker
        assert hasher.pending == 0
        # The given-up hash was dropped from the queue: the pool is free at once.
        assert await hasher.verify("pw", bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode())
    finally:
        hasher.close()


@pytest.mark.parametrize(("cost", "rehash"), [(4, True), (5, False), (6, True)])
def test_a_hash_of_other_rounds_needs_a_rehash(cost, rehash):
    hasher = PasswordHasher(rounds=5, threads=1)
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(cost)).decode()
    assert hasher.needs_rehash(hashed) is rehash
    assert not hasher.needs_rehash("not a bcrypt hash")
    hasher.close()


@pytest.mark.parametrize("stored_cost", [4, 5, 6, 7, 8])
async def test_a_failed_check_and_its_burn_cost_one_hash_at_the_configured_rounds(
    bcrypt_work, stored_cost
):
    """2^r for the check, then decoys of r … R-1: 2^R in all, whatever r below R. A
    hash of R or more leaves nothing to burn."""
    hasher = PasswordHasher(rounds=7, threads=1)
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(stored_cost)).decode()
    bcrypt_work.clear()
    assert not await hasher.verify("wrong", hashed)
    await hasher.burn(checked=hashed)
    assert work(bcrypt_work) == 2 ** max(7, stored_cost)
    hasher.close()


async def test_the_decoys_exist_from_the_start(bcrypt_work):
    """Made when the hasher is, without hashing (its one hash at start is the pace's
    first estimate, at cost 6): the first burn costs one check."""
    hasher = PasswordHasher(rounds=6, threads=1)
    assert bcrypt_work == [("hashpw", CALIBRATION_ROUNDS)]
    bcrypt_work.clear()
    assert sorted(hasher.decoys) == [4, 5, 6]
    await hasher.burn()
    assert bcrypt_work == [("checkpw", 6)]
    assert not await hasher.verify("pw", "$2b$06$not-even-base64")  # malformed: one hash
    assert bcrypt_work == [("checkpw", 6)] * 2
    hasher.close()


async def test_a_hash_that_has_begun_is_finished_past_the_deadline():
    """Its work is spent either way: giving it up turned admitted logins into busy
    answers just when the cores were scarce (a flood, a loaded machine)."""
    hasher = PasswordHasher(rounds=15, threads=1, max_wait_s=0.1)
    try:
        hasher.backlog.hash_wall_seconds = 0.01
        assert hasher.backlog.deadline_s() == 1.0
        started = time.monotonic()
        hashed = await hasher.hash("pw")  # about 2 s at 15 rounds
        assert time.monotonic() - started > 1.0 and hashed.startswith("$2b$15$")
        assert hasher.pending == 0
    finally:
        hasher.close()


async def test_callers_that_wait_as_told_get_the_next_free_thread_first():
    """A flood's hashes, queued first, must not make a client that waited as told wait
    behind all of them."""
    hasher = PasswordHasher(rounds=4, threads=1)
    done: list[str] = []

    async def login(name: str, too_soon: bool) -> None:
        admit_as(Caller(too_soon))  # this task's own context
        await hasher.hash("pw")
        done.append(name)

    try:
        sleep = hasher.pool.run(time.sleep, 0.3, measured=False)  # type: ignore[arg-type]
        blocker = asyncio.ensure_future(sleep)
        await asyncio.sleep(0)  # it has the thread
        flood = [asyncio.ensure_future(login(f"flood {i}", True)) for i in range(3)]
        await asyncio.sleep(0.05)
        polite = asyncio.ensure_future(login("polite", False))
        await asyncio.gather(blocker, polite, *flood)
        assert done[0] == "polite" and sorted(done[1:]) == ["flood 0", "flood 1", "flood 2"]
        assert hasher.pending == 0
    finally:
        hasher.close()


async def admit(hasher: PasswordHasher, caller: Caller | None = None) -> asyncio.Future[str]:
    """A hash of a request of ``caller`` (its own task), run until it is admitted and
    queued, or refused: Busy is raised before the first await."""

    async def one_hash() -> str:
        if caller is not None:
            admit_as(caller)
        return await hasher.hash("pw")

    task = asyncio.ensure_future(one_hash())
    await asyncio.sleep(0)
    return task


async def test_a_slow_configuration_refuses_once_the_work_ahead_exceeds_the_bound():
    """12 rounds on one thread (about 0.25 s a hash here), a bound of 1 s: requests are
    admitted while the hashes ahead of each would take 1 s at most, the next is refused
    at once with the Retry-After of that work, and every admitted one is answered well
    before a client would give up (they wait the bound at most, then their own hash)."""
    hasher = PasswordHasher(rounds=12, threads=1, max_wait_s=1.0, niceness=0)
    pace = hasher.backlog.hash_wall_seconds  # measured at start, no hash done yet
    assert 0.05 < pace < 1.0, pace  # 2**6 x a hash at cost 6
    admitted: list[asyncio.Future[str]] = []
    started = time.monotonic()
    try:
        while True:
            ahead_s = hasher.backlog.wait_s()
            task = await admit(hasher)
            if task.done():
                break
            assert ahead_s <= 1.0
            admitted.append(task)
        assert time.monotonic() - started < 0.1  # refused at once, not after a wait
        with pytest.raises(Busy) as busy:
            task.result()
        assert ahead_s > 1.0
        # Every admitted request is one hash ahead: what the pace says it takes.
        assert ahead_s == pytest.approx(len(admitted) * pace, rel=0.05)
        assert busy.value.retry_after_s == math.ceil(ahead_s)
        await asyncio.gather(*admitted)
        # Answered within the bound and their own hash, with room for a noisy machine.
        assert time.monotonic() - started < 3 * (1.0 + pace), time.monotonic() - started
        assert hasher.pending == 0 and hasher.backlog.wait_s() == 0
        again = await admit(hasher)
        assert not again.done()  # nothing ahead: admitted again
        await again
    finally:
        hasher.close()


async def test_a_caller_that_asks_too_soon_is_refused_at_half_the_bound():
    """Hashes ahead that take more than half the bound: a caller that asks too soon is
    refused, one that waits as told is still admitted, and its hash runs before the
    too-soon callers' hashes admitted earlier."""
    hasher = PasswordHasher(rounds=12, threads=1, max_wait_s=1.5, niceness=0)
    queued: list[asyncio.Future[str]] = []
    try:
        # Hashes of callers that asked too soon, then of polite ones, until more than
        # half the bound (0.75 s) is ahead.
        while hasher.backlog.wait_s(too_soon=True) <= 0.75:
            task = await admit(hasher, Caller(too_soon=len(queued) < 2))
            assert not task.done()
            queued.append(task)
        assert hasher.backlog.wait_s(too_soon=True) <= 1.5  # one hash over: < 0.75 s here
        soon = await admit(hasher, Caller(too_soon=True))
        with pytest.raises(Busy) as busy:
            soon.result()
        assert busy.value.retry_after_s == math.ceil(hasher.backlog.wait_s(too_soon=True))
        polite = await admit(hasher, Caller(too_soon=False))
        assert not polite.done()  # admitted: its wait is under the whole bound
        await polite
        # It was served before the too-soon hashes queued before it.
        assert not queued[1].done()
        await asyncio.gather(*queued)
    finally:
        hasher.close()
