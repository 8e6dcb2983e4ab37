"""The admission books: what is ahead of a request, in bcrypt work and seconds.

These run no bcrypt (tests/core/test_passwords.py does, at real costs): a clock of the
test's own moves running jobs along, so each figure can be stated exactly."""

from __future__ import annotations

import pytest

from authsvc.core.admission import DEFAULT_MAX_ADMITTED, Backlog, Caller
from authsvc.core.errors import Busy

HASH = 2**4  # the work of one hash at rounds 4


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def backlog(clock: Clock, **kwargs) -> Backlog:
    """Rounds 4, 2 threads, 0.1 s a hash: each hash ahead is 0.05 s of waiting."""
    return Backlog(4, 2, hash_seconds=0.1, clock=clock, **kwargs)


def test_the_work_ahead_is_what_is_admitted_queued_and_left_of_what_runs():
    clock = Clock()
    books = backlog(clock)
    assert books.wait_s() == 0
    place = books.admit(None)  # looking up: one hash expected
    assert books.wait_s() == pytest.approx(0.05) and books.admitted == 1
    job = books.queue(place, HASH)  # its hash queued: drawn on what it reserved
    assert books.wait_s() == pytest.approx(0.05)
    books.begin(job)
    clock.now = 0.06  # 60% of a hash done
    assert books.wait_s() == pytest.approx(0.02)
    clock.now = 0.5  # overran its share: nothing more is expected of it
    assert books.wait_s() == 0
    books.end(job)
    books.leave(place)
    assert books.wait_s() == 0 and books.admitted == 0


def test_a_login_reserves_one_hash_and_gives_back_what_it_did_not_use():
    """A check of a cheaper stored hash (cost 2 below) draws a quarter; the burn that
    tops it up the rest. A login refused before hashing (a rate limit) gives all back;
    a rehash after a success is more work ahead."""
    clock = Clock()
    books = backlog(clock)
    place = books.admit(None)
    check = books.queue(place, HASH // 4)
    assert books.wait_s() == pytest.approx(0.05)  # the quarter queued, 3/4 reserved
    books.begin(check)
    books.end(check)
    assert books.wait_s() == pytest.approx(0.0375)
    rehash = books.queue(place, HASH)  # 3/4 drawn, 1/4 beyond
    assert books.wait_s() == pytest.approx(0.05)
    books.drop(rehash)  # given up before it began
    assert books.wait_s() == 0
    books.leave(place)
    refused = books.admit(None)
    books.leave(refused)  # no hash: nothing left reserved
    assert books.wait_s() == 0 and books.admitted == 0


def test_a_caller_is_refused_when_the_work_ahead_exceeds_the_bound():
    clock = Clock()
    books = backlog(clock, max_wait_s=0.2)
    places = [books.admit(Caller(too_soon=False)) for _ in range(5)]  # 0 … 0.2 s ahead
    assert books.wait_s() == pytest.approx(0.25)
    with pytest.raises(Busy) as busy:
        books.admit(Caller(too_soon=False))
    assert busy.value.retry_after_s == 1  # the work ahead done in 0.25 s: 1, the least
    books.leave(places.pop())
    books.admit(None)  # 0.2 s ahead: admitted


def test_a_caller_that_asks_too_soon_gets_half_the_bound_and_waits_behind_the_rest():
    clock = Clock()
    books = backlog(clock, max_wait_s=0.2)
    soon = Caller(too_soon=True)
    places = [books.admit(soon) for _ in range(3)]  # 0, 0.05, 0.1 s ahead
    assert soon.asked
    with pytest.raises(Busy):
        books.admit(soon)  # 0.15 s ahead: over half of 0.2
    # A polite caller is served first: the too-soon work is not ahead of it.
    assert books.wait_s(too_soon=False) == 0
    assert books.wait_s(too_soon=True) == pytest.approx(0.15)
    polite = [books.admit(Caller(too_soon=False)) for _ in range(5)]
    assert books.wait_s(too_soon=False) == pytest.approx(0.25)
    assert books.wait_s(too_soon=True) == pytest.approx(0.4)
    assert books.retry_after_s(too_soon=True) == 1
    for place in places + polite:
        books.leave(place)


def test_hash_queue_max_caps_the_requests_too_and_too_soon_gets_half():
    clock = Clock()
    books = backlog(clock, max_wait_s=60, max_admitted=4)
    for _ in range(2):
        books.admit(Caller(too_soon=True))
    with pytest.raises(Busy):
        books.admit(Caller(too_soon=True))
    for _ in range(2):
        books.admit(None)
    with pytest.raises(Busy):
        books.admit(None)
    assert backlog(clock).max_admitted == DEFAULT_MAX_ADMITTED  # unset: memory only


def test_retry_after_is_the_whole_seconds_of_the_work_ahead():
    clock = Clock()
    books = Backlog(12, 1, hash_seconds=0.3, max_wait_s=1.0, clock=clock)
    for _ in range(4):  # 0 … 0.9 s ahead
        books.admit(None)
    with pytest.raises(Busy) as busy:
        books.admit(None)  # 1.2 s ahead
    assert busy.value.retry_after_s == 2


def test_a_job_is_given_up_past_twice_the_wait_allowed_and_its_own_hash():
    clock = Clock()
    assert backlog(clock, max_wait_s=1.0).deadline_s() == pytest.approx(2.2)
    assert backlog(clock, max_wait_s=0.1).deadline_s() == 1.0  # a second, the least


def test_the_pace_follows_the_hashes_measured():
    clock = Clock()
    books = backlog(clock)
    place = books.admit(None)
    job = books.queue(place, HASH)
    books.begin(job)
    books.end(job, 0.6)  # the cores were shared: 0.6 s of wall time
    assert books.hash_wall_seconds == pytest.approx(0.2)  # a fifth of the way
    books.leave(place)
