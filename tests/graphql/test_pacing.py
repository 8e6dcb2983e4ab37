"""Pacing's rules, with an injected clock: who asks too soon, what is held and for how
long, when a connection is closed, and that its memory stays bounded."""

from __future__ import annotations

import asyncio
import time

from authsvc.graphql import pacing
from authsvc.graphql.pacing import Pacing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Connection:  # any object that can be weakly referenced, as an IOStream
    pass


def make(clock: Clock, hold_max_s: float = 0.2, held_max: int = 10, ignored_max: int = 3):
    return Pacing(hold_max_s, held_max, ignored_max, clock)


async def test_a_client_that_waits_as_told_is_never_too_soon_and_held_only_the_first_hold():
    clock = Clock()
    paced = make(clock, hold_max_s=5)
    conn = Connection()
    caller = paced.caller(conn, "192.0.2.1")
    assert not caller.too_soon  # nothing known of it
    assert not await paced.answered(conn, "192.0.2.1", caller, 3)  # busy, retry in 3 s
    clock.now += 3  # waited its Retry-After
    caller = paced.caller(conn, "192.0.2.1")
    assert not caller.too_soon
    started = time.monotonic()
    assert not await paced.answered(conn, "192.0.2.1", caller, 3)
    # Any refusal is held FIRST_HOLD_S (many new clients at once must not spin either),
    # and no longer: it did not ask too soon.
    assert pacing.FIRST_HOLD_S <= time.monotonic() - started < pacing.FIRST_HOLD_S + 0.1


async def test_many_new_clients_at_once_are_held_too():
    """A flood from addresses never seen before (a botnet behind a trusted proxy) is
    never too soon; answered at once it kept both loops busy and hashing, at nice 19,
    evaluated no password in 12 s."""
    paced = make(Clock(), hold_max_s=5)
    started = time.monotonic()
    await asyncio.gather(
        *(
            paced.answered(None, f"10.0.{i}.1", paced.caller(None, f"10.0.{i}.1"), 2)
            for i in range(50)
        )
    )
    assert time.monotonic() - started >= pacing.FIRST_HOLD_S


async def test_asking_again_within_a_second_of_a_login_is_too_soon():
    """Else a connection whose login succeeded takes the place it freed at once, and
    keeps it for ever, however many clients wait their turn."""
    clock = Clock()
    paced = make(clock)
    conn = Connection()
    assert not await paced.answered(conn, "192.0.2.1", paced.caller(conn, "192.0.2.1"), None)
    clock.now += pacing.PACE_S / 2
    assert paced.caller(conn, "192.0.2.1").too_soon
    clock.now += pacing.PACE_S / 2
    assert not paced.caller(conn, "192.0.2.1").too_soon


async def test_a_refusal_asked_too_soon_for_is_held_then_the_connection_closed():
    clock = Clock()
    paced = make(clock, hold_max_s=0.2, ignored_max=3)
    conn = Connection()
    await paced.answered(conn, "192.0.2.1", paced.caller(conn, "192.0.2.1"), 60)
    for _ in range(2):  # asks again at once, twice: each refusal held REFUSAL_HOLD_MAX_S
        caller = paced.caller(conn, "192.0.2.1")
        assert caller.too_soon
        started = time.monotonic()
        assert not await paced.answered(conn, "192.0.2.1", caller, 60)
        assert 0.15 < time.monotonic() - started < 1
        assert paced.held == 0
    caller = paced.caller(conn, "192.0.2.1")  # the 3rd in a row: closed, not held
    started = time.monotonic()
    assert await paced.answered(conn, "192.0.2.1", caller, 60)
    assert time.monotonic() - started < 0.1
    # A new connection from that address is judged by the address: too soon, and its
    # refusal held too (a flood that reconnects each time is paced all the same).
    fresh = Connection()
    caller = paced.caller(fresh, "192.0.2.1")
    assert caller.too_soon and not paced.caller(Connection(), "192.0.2.2").too_soon
    started = time.monotonic()
    assert not await paced.answered(fresh, "192.0.2.1", caller, 60)
    assert 0.15 < time.monotonic() - started < 1
    # Once a connection has its own record, that record judges it, not the address.
    other = Connection()
    await paced.answered(other, "192.0.2.9", paced.caller(other, "192.0.2.9"), 1)
    clock.now += 1
    assert not paced.caller(other, "192.0.2.1").too_soon


async def test_behind_a_proxy_each_address_is_paced_and_never_closed():
    """The proxy's connections carry many clients: the address tells them apart, and
    closing the proxy's connection would cut the others off."""
    clock = Clock()
    paced = make(clock, hold_max_s=0.05, ignored_max=1)
    await paced.answered(None, "203.0.113.9", paced.caller(None, "203.0.113.9"), 60)
    assert paced.caller(None, "203.0.113.9").too_soon
    assert not paced.caller(None, "203.0.113.10").too_soon
    for _ in range(3):
        caller = paced.caller(None, "203.0.113.9")
        assert not await paced.answered(None, "203.0.113.9", caller, 60)
    assert len(paced._connections) == 0


async def test_held_answers_are_bounded():
    clock = Clock()
    paced = make(clock, hold_max_s=0.3, held_max=1, ignored_max=100)
    first, second = Connection(), Connection()
    for conn in (first, second):
        await paced.answered(conn, "192.0.2.1", paced.caller(conn, "192.0.2.1"), 60)
    holding = asyncio.ensure_future(
        paced.answered(first, "192.0.2.1", paced.caller(first, "192.0.2.1"), 60)
    )
    await asyncio.sleep(0.05)
    assert paced.held == 1
    assert await paced.answered(second, "192.0.2.1", paced.caller(second, "192.0.2.1"), 60)
    assert not await holding and paced.held == 0


async def test_what_is_remembered_is_bounded(monkeypatch):
    monkeypatch.setattr(pacing, "MAX_ADDRESSES", 3)
    clock = Clock()
    paced = make(clock)
    for i in range(10):
        address = f"198.51.100.{i}"
        await paced.answered(None, address, paced.caller(None, address), 60)
    assert len(paced._addresses) == 3
    assert paced.caller(None, "198.51.100.9").too_soon
    assert not paced.caller(None, "198.51.100.0").too_soon  # forgotten first
    conn = Connection()
    await paced.answered(conn, "192.0.2.1", paced.caller(conn, "192.0.2.1"), 60)
    assert len(paced._connections) == 1 and len(paced._addresses) == 3
    del conn  # a closed connection's record goes with it
    assert len(paced._connections) == 0
