"""bcrypt hashing on a thread pool, never on the event loop.

bcrypt releases the GIL while it hashes, so a pool sized to the cores hashes in parallel
while the event loop keeps serving refresh and `me`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

import bcrypt

from authsvc.core.errors import Busy
from authsvc.core.validation import BCRYPT_MAX_PASSWORD_BYTES

T = TypeVar("T")

#: The costs bcrypt accepts.
MIN_ROUNDS, MAX_ROUNDS = 4, 31

#: A bcrypt hash: version, two-digit cost, 22 characters of salt and 31 of digest.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")

#: Set while a request holds its place in the backlog (PasswordHasher.admitted).
_admitted: ContextVar[bool] = ContextVar("authsvc_hashing_admitted", default=False)


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


#: The hashing threads' default nice value (Linux; elsewhere nothing happens): the
#: lowest priority, so that refresh and `me` keep their latency beside a full backlog
#: (at the loops' own, 0, refresh p99 beside a login flood rose 4.6-fold; at 5, 3.2).
#: Hashing gets the cores the loops leave, which is why refusals are paced
#: (graphql/pacing.py): answered at once, a flood's took every core and no login passed.
HASHING_NICENESS = 19


class PasswordHasher:
    """``max_pending`` bounds the backlog: past it, a hash is refused at once (Busy)
    rather than queued for seconds, so a flood of logins sheds load instead of making
    every login slow; refresh and `me` never wait on this pool at all.

    A hash that has not begun within twice the wait the bound allows (the cores being
    taken by other work) is given up and answered Busy too, so that no login waits in
    the queue for as long as the cores stay taken; one that has begun is finished."""

    def __init__(
        self,
        rounds: int,
        threads: int,
        max_pending: int | None = None,
        niceness: int = HASHING_NICENESS,
    ) -> None:
        self.rounds = rounds
        self._pool = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="bcrypt",
            initializer=functools.partial(_lower_priority, niceness),
        )
        self._max_pending = max_pending if max_pending is not None else 4 * threads
        #: The places a caller that asks too soon may take: half the backlog, enough to
        #: keep every thread busy, so the other half is always there for clients that
        #: wait as told (else a flood takes every place the moment it frees).
        self._places_for_too_soon = max(1, self._max_pending // 2)
        self._threads = threads
        #: Hashes waiting for a thread: of callers that wait as told, then of the others.
        self._jobs: tuple[deque[tuple[Callable[[], Any], Future[Any]]], ...] = (
            deque(),
            deque(),
        )
        self._jobs_lock = threading.Lock()
        self.pending = 0
        #: CPU seconds one hash takes here, a moving average of the hashes done (CPU
        #: time, not wall time: a hash that waited for a core did not cost more).
        self.hash_seconds = 0.25
        #: The same in wall time, waiting for a core included: the backlog's pace.
        self.hash_wall_seconds = 0.25
        #: A decoy per cost up to ``rounds``, made now: the first unknown email of a
        #: worker costs what every later one does (no decoy is made on first use).
        self.decoys = {cost: _decoy(cost) for cost in range(MIN_ROUNDS, rounds + 1)}

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a place in the backlog for a whole login or registration, from before
        its first lookup to its last hash. Raises Busy at once when the backlog is full:
        the place is taken when the request is admitted, so requests arriving together
        cannot all pass a check before any of them has queued a hash."""
        if _admitted.get():  # already holds one (register calls create_user)
            yield
            return
        self._take_place()
        token = _admitted.set(True)
        try:
            yield
        finally:
            _admitted.reset(token)
            self.pending -= 1

    def _take_place(self) -> None:
        caller = _caller.get()
        places = self._max_pending
        if caller is not None:
            caller.asked = True
            if caller.too_soon:
                places = self._places_for_too_soon
        if self.pending >= places:
            raise Busy(retry_after_s=self.retry_after_s())
        self.pending += 1

    def retry_after_s(self) -> int:
        """Whole seconds until the backlog has drained enough to take one more."""
        return max(1, math.ceil(self.pending * self.hash_seconds / self._threads))

    async def hash(self, password: str) -> str:
        """The bcrypt hash of ``password`` (at most 72 bytes: validate first)."""
        hashed = await self._run(bcrypt.hashpw, password.encode(), bcrypt.gensalt(self.rounds))
        return hashed.decode("ascii")

    async def verify(self, password: str, hashed: str) -> bool:
        """Whether ``password`` matches ``hashed``. Costs one hash at ``hashed``'s cost
        whatever the input (at ``rounds`` for a malformed hash, which matches nothing)."""
        secret = password.encode()
        cost = self.cost_of(hashed)
        if cost is None:
            await self.burn()
            return False
        try:
            # No stored password is longer than bcrypt reads (bcrypt 5 raises on it):
            # an overlong one is hashed as far as bcrypt reads, for the same work, and
            # matches nothing.
            matched = await self._run(
                bcrypt.checkpw,
                secret[:BCRYPT_MAX_PASSWORD_BYTES],
                hashed.encode("ascii"),
                measured=cost == self.rounds,
            )
        except ValueError:  # a stored hash bcrypt cannot read matches nothing
            await self._run(_check_decoys, b"not the decoy", self._decoy_of(cost), measured=False)
            return False
        return matched and len(secret) <= BCRYPT_MAX_PASSWORD_BYTES

    def cost_of(self, hashed: str) -> int | None:
        """The bcrypt cost ``hashed`` was made with (``$2b$12$…``: the third field), or
        None for what is no bcrypt hash."""
        match = _BCRYPT_HASH.fullmatch(hashed)
        cost = int(match[1]) if match else 0
        return cost if MIN_ROUNDS <= cost <= MAX_ROUNDS else None

    def needs_rehash(self, hashed: str) -> bool:
        """Whether ``hashed`` was made with other rounds than configured now, fewer or
        more (as Django's ``must_update``): the next login makes every hash cost what
        the settings say, and an account's response times tell nothing of its past."""
        cost = self.cost_of(hashed)
        return cost is not None and cost != self.rounds

    async def burn(self, checked: str | None = None) -> None:
        """Spend what is left of one verification at ``rounds``, so that every refused
        login costs the same work and response times tell nothing: which emails have
        an account (``checked`` None: one whole verification, against a decoy), and
        which accounts have an older, cheaper hash.

        After a verification against ``checked`` of cost r below ``rounds`` R, decoys of
        costs r, r+1, …, R-1: bcrypt's work doubles with each cost, so
        2^r + (2^r + 2^(r+1) + … + 2^(R-1)) = 2^R, exactly one verification at R (Django's
        ``harden_runtime`` makes up the same gap with 2^(R-r) - 1 hashes at cost r). A
        hash of cost R or more leaves nothing to spend."""
        if checked is None:
            costs = [self.rounds]
        else:
            spent = self.cost_of(checked)
            costs = list(range(spent, self.rounds)) if spent is not None else []
        if costs:
            decoys = (self._decoy_of(cost) for cost in costs)
            await self._run(_check_decoys, b"not the decoy", *decoys, measured=not checked)

    def _decoy_of(self, cost: int) -> bytes:
        return self.decoys.get(cost) or _decoy(cost)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., T], *args: bytes, measured: bool = True) -> T:
        """Run ``fn`` on the pool. Raises Busy when the backlog is full, unless the
        caller was admitted already. ``measured``: the work of one hash at ``rounds``,
        a sample for ``hash_seconds``."""
        if _admitted.get():
            return await self._timed(fn, args, measured)
        self._take_place()
        try:
            return await self._timed(fn, args, measured)
        finally:
            self.pending -= 1

    async def _timed(self, fn: Callable[..., T], args: tuple[bytes, ...], measured: bool) -> T:
        def timed() -> T:
            wall, cpu = time.perf_counter(), time.thread_time()
            result = fn(*args)
            if measured:
                self.hash_seconds += 0.2 * (time.thread_time() - cpu - self.hash_seconds)
                wall = time.perf_counter() - wall
                self.hash_wall_seconds += 0.2 * (wall - self.hash_wall_seconds)
            return result

        # Callers that wait as told are served first: a flood's hashes, queued first,
        # must not make every other login wait behind them. The pool runs whichever job
        # is first when a thread frees (_run_next), so no thread waits on the loop.
        job: Future[T] = Future()
        caller = _caller.get()
        with self._jobs_lock:
            self._jobs[1 if caller is not None and caller.too_soon else 0].append((timed, job))
        self._pool.submit(self._run_next)
        # The longest a hash may wait for a thread, at twice the backlog's pace in wall
        # time (on cores shared with other work every hash takes longer). One that has
        # begun is finished: its work is spent either way, and dropping it would turn
        # admitted logins into busy answers just when the cores are scarce.
        deadline_s = 2 * (self._max_pending / self._threads + 1) * self.hash_wall_seconds
        result = asyncio.wrap_future(job)
        await asyncio.wait({result}, timeout=max(1.0, deadline_s))
        if not result.done() and job.cancel():  # still queued: dropped
            raise Busy(retry_after_s=self.retry_after_s())
        return await result

    def _run_next(self) -> None:
        """In a pool thread: run the first job queued that is not given up."""
        while True:
            with self._jobs_lock:
                queued = next((jobs.popleft() for jobs in self._jobs if jobs), None)
            if queued is None:
                return
            work, job = queued
            if job.set_running_or_notify_cancel():
                try:
                    job.set_result(work())
                except BaseException as exc:  # for the awaiting caller to raise
                    job.set_exception(exc)
                return


def _decoy(cost: int) -> bytes:
    """A hash of cost ``cost`` of nothing anyone knows, made without hashing: bcrypt
    checks a password by hashing it with the stored salt and cost and comparing, so a
    salt and any digest cost exactly what a real hash of that cost does to check."""
    return bcrypt.gensalt(cost) + b"." * 31


def _check_decoys(secret: bytes, *decoys: bytes) -> bool:
    """Check ``secret`` against each decoy (one pool job for them all); never a match."""
    for decoy in decoys:
        bcrypt.checkpw(secret, decoy)
    return False


def _lower_priority(niceness: int) -> None:
    """Give a hashing thread its nice value (HASH_NICENESS): above 0 it yields the CPU
    to the event loops, so refresh keeps its latency beside a full backlog, at the
    price of logins under any load that keeps the loops busy. On Linux a thread's nice
    value is its own (setpriority on the calling thread)."""
    if niceness:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
