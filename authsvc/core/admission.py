"""Admission to password hashing by expected wait, not by count.

A login or registration is answered "busy" only when the hash work ahead of it would
take longer than a bound (HASH_QUEUE_MAX_WAIT_S) at the pace the hashing pool keeps.
Counting requests instead (4 per thread, whatever a hash cost) refused hundreds of
logins at BCRYPT_ROUNDS=4, where a hash takes a millisecond and the wait was nothing
(issue 12, item 4), and would let a slow cost queue for longer than clients wait.

Work is counted in bcrypt's own unit, 2**cost (its work doubles with each cost), as
exact integers; one hash at BCRYPT_ROUNDS is 2**rounds. What is ahead of a request:

- every admitted request whose hash is not queued yet (it is doing its lookups and
  will hash: a login costs one hash, a registration one too), one hash each;
- every job queued for a thread, its own work (a check of a cheaper stored hash
  costs less, the burn that tops it up the rest);
- what is left of every job running, by its elapsed time at the measured pace.

A caller that waits as told is served before callers that ask too soon (their queue
waits for a thread after the other, see PasswordHasher), so its wait counts only
its own kind's work and what runs; a caller that asks too soon counts everything and
gets half the bound, so that a flood cannot take all the admission the moment it
frees. The pace is the wall time of one hash in a pool thread, waiting for a core
included, divided by the threads: the rate the backlog really drains at, slower when
the cores are shared (CPU time would promise a wait that a busy machine cannot keep).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar

from authsvc.core.errors import Busy

#: The longest the hashes ahead of a request may take before it is answered "busy"
#: (HASH_QUEUE_MAX_WAIT_S): about what 4 hashes per thread took at 12 rounds, the
#: count admitted before, so a default deployment sheds load as it did.
DEFAULT_MAX_WAIT_S = 1.0
#: Requests admitted at once per worker when HASH_QUEUE_MAX is unset: no bound on
#: waiting (the wait bound is that), only on memory (each holds a request's buffers).
DEFAULT_MAX_ADMITTED = 1024
#: The least time a hash queued for a thread waits before it is given up (see
#: Backlog.deadline_s).
MIN_DEADLINE_S = 1.0
#: How much of each new measurement the pace takes (a moving average).
_PACE_WEIGHT = 0.2


class Caller:
    """The client of a request as admission sees it, set by the HTTP edge (see
    graphql/pacing.py) with ``admit_as``: whether it asks again too soon (within a
    second of its last answer, or before the Retry-After it was given), and, once
    admission has seen it, whether it asked for a place."""

    __slots__ = ("asked", "too_soon")

    def __init__(self, too_soon: bool) -> None:
        self.too_soon = too_soon
        self.asked = False


_caller: ContextVar[Caller | None] = ContextVar("authsvc_hashing_caller", default=None)


def admit_as(caller: Caller) -> None:
    """Admission treats the rest of this request (its own task) as ``caller``'s."""
    _caller.set(caller)


def current_caller() -> Caller | None:
    """The caller of this request, None outside the HTTP edge (the CLI, a test)."""
    return _caller.get()


class Place:
    """One admitted request's hold on the backlog: the hash it is expected to cost
    (``reserved``, bcrypt work) until its jobs are queued and draw on it."""

    __slots__ = ("reserved", "too_soon")

    def __init__(self, too_soon: bool, reserved: int) -> None:
        self.too_soon = too_soon
        self.reserved = reserved


class Job:
    """One job for the pool (a hash, a check, a burn) and the bcrypt work it costs."""

    __slots__ = ("began_at", "too_soon", "work")

    def __init__(self, too_soon: bool, work: int) -> None:
        self.too_soon = too_soon
        self.work = work
        self.began_at = 0.0  # set when it gets a thread (Backlog.begin)


class Backlog:
    """The hash work one worker has admitted, and the admission rule over it.

    Thread-safe: pool threads report jobs beginning and ending, the event loop admits.
    ``max_admitted`` caps the requests admitted at once (HASH_QUEUE_MAX) beside the
    wait bound; a caller that asks too soon gets half of each."""

    def __init__(
        self,
        rounds: int,
        threads: int,
        hash_seconds: float,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        max_admitted: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.threads = threads
        self.max_wait_s = max_wait_s
        self.max_admitted = DEFAULT_MAX_ADMITTED if max_admitted is None else max_admitted
        #: The work of one hash at the configured rounds: what a request reserves.
        self.hash_work: int = 2**rounds
        #: Wall seconds of one hash at ``rounds``, waiting for a core included, a moving
        #: average: the backlog's pace. ``hash_seconds`` is its first estimate.
        self.hash_wall_seconds = hash_seconds
        #: Requests holding a place now (the authsvc_hashing_backlog gauge).
        self.admitted = 0
        self._clock = clock
        self._lock = threading.Lock()
        #: Work reserved or queued, not begun: of callers that wait as told, then of
        #: callers that ask too soon.
        self._waiting = [0, 0]
        self._running: set[Job] = set()

    def admit(self, caller: Caller | None) -> Place:
        """A place for a request of ``caller``, reserving one hash. Raises Busy, with
        the seconds until the work ahead is done, when that work would take longer
        than the bound, or when the cap on requests is reached."""
        too_soon = caller is not None and caller.too_soon
        if caller is not None:
            caller.asked = True
        share = 0.5 if too_soon else 1.0
        with self._lock:
            wait_s = self._wait_s(too_soon)
            # Half the requests too, at least one: an honest client is always let in
            # when nothing is ahead, however small the cap.
            places = max(1, int(self.max_admitted * share))
            if wait_s > self.max_wait_s * share or self.admitted >= places:
                raise Busy(retry_after_s=_whole_seconds(wait_s))
            self.admitted += 1
            self._waiting[too_soon] += self.hash_work
        return Place(too_soon, self.hash_work)

    def leave(self, place: Place) -> None:
        """The request has ended: its place, and what it reserved and did not use."""
        with self._lock:
            self.admitted -= 1
            self._waiting[place.too_soon] -= place.reserved
            place.reserved = 0

    def queue(self, place: Place, work: int) -> Job:
        """A job of ``work`` for ``place`` is queued: it draws first on what the place
        reserved (the hash a login or registration was expected to cost), and what it
        costs beyond (a rehash, a second check) is ahead of later requests too."""
        with self._lock:
            drawn = min(place.reserved, work)
            place.reserved -= drawn
            self._waiting[place.too_soon] += work - drawn
        return Job(place.too_soon, work)

    def begin(self, job: Job) -> None:
        """In a pool thread: ``job`` has a thread now."""
        with self._lock:
            self._waiting[job.too_soon] -= job.work
            job.began_at = self._clock()
            self._running.add(job)

    def end(self, job: Job, wall_s: float | None = None) -> None:
        """In a pool thread: ``job`` is done. ``wall_s``: the seconds it took, when it
        was the work of one hash at the configured rounds, for the pace."""
        with self._lock:
            self._running.discard(job)
            if wall_s is not None:
                self.hash_wall_seconds += _PACE_WEIGHT * (wall_s - self.hash_wall_seconds)

    def drop(self, job: Job) -> None:
        """``job`` was given up before it began."""
        with self._lock:
            self._waiting[job.too_soon] -= job.work

    def wait_s(self, too_soon: bool = False) -> float:
        """The seconds the work ahead of a new request of that kind would take."""
        with self._lock:
            return self._wait_s(too_soon)

    def retry_after_s(self, too_soon: bool = False) -> int:
        """Whole seconds until the work ahead of a request of that kind is done: by
        then it would be admitted, unless more came meanwhile."""
        return _whole_seconds(self.wait_s(too_soon))

    def deadline_s(self) -> float:
        """The longest a job may wait for a thread before it is given up: twice the
        wait admission allows and the job's own hash (on cores taken by other work
        every hash takes longer, and the queue moves slower than the pace promised),
        a second at least."""
        return max(MIN_DEADLINE_S, 2 * (self.max_wait_s + self.hash_wall_seconds))

    def _wait_s(self, too_soon: bool) -> float:
        waiting = self._waiting[0] + (self._waiting[1] if too_soon else 0)
        pace = self.hash_wall_seconds
        now = self._clock()
        # A running job is done by its share of the pace; one that overran its share
        # leaves nothing it could be expected to take.
        left = sum(
            max(0.0, job.work - (now - job.began_at) / pace * self.hash_work)
            for job in self._running
        )
        return (waiting + left) / self.hash_work * pace / self.threads


def _whole_seconds(seconds: float) -> int:
    """A Retry-After: whole seconds, one at least."""
    return max(1, math.ceil(seconds))
