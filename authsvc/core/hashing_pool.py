"""The threads that hash passwords: bcrypt off the event loop, in admission order.

bcrypt releases the GIL while it hashes, so a pool sized to the cores hashes in parallel
while the event loop keeps serving refresh and `me`. Which requests may queue is
core/admission.py's rule; this module keeps its books as jobs queue, begin and end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any, TypeVar

import bcrypt

from authsvc.core.admission import DEFAULT_MAX_WAIT_S, Backlog, Place, current_caller
from authsvc.core.errors import Busy

T = TypeVar("T")

#: The hashing threads' default nice value (Linux; elsewhere nothing happens): the
#: lowest priority, so that refresh and `me` keep their latency beside a full backlog
#: (at the loops' own, 0, refresh p99 beside a login flood rose 4.6-fold; at 5, 3.2).
#: Hashing gets the cores the loops leave, which is why refusals are paced
#: (graphql/pacing.py): answered at once, a flood's took every core and no login passed.
HASHING_NICENESS = 19

#: The cost the first estimate of a hash's time is measured at, when the pool is made
#: (a few milliseconds): bcrypt's work doubles with each cost, so the time at ``rounds``
#: is that times 2**(rounds - 6), to within a few percent here. A burst right after the
#: start is then admitted by a real estimate, not a guess.
CALIBRATION_ROUNDS = 6

#: The place of the request this task serves, while it holds one (HashingPool.admitted).
_place: ContextVar[Place | None] = ContextVar("authsvc_hashing_place", default=None)


class HashingPool:
    """``threads`` threads at ``niceness`` that run bcrypt jobs of one worker, and the
    Backlog that admits requests to them (``max_wait_s``, ``max_pending``).

    A job that has not begun within Backlog.deadline_s (the cores being taken by other
    work) is given up and answered Busy, so that no login waits in the queue for as long
    as the cores stay taken; one that has begun is finished."""

    def __init__(
        self,
        rounds: int,
        threads: int,
        max_pending: int | None = None,
        niceness: int = HASHING_NICENESS,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        self.rounds = rounds
        self.executor = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="bcrypt",
            initializer=functools.partial(_lower_priority, niceness),
        )
        self.backlog = Backlog(
            rounds,
            threads,
            # On a pool thread, as every hash: bcrypt never runs on the event loop.
            hash_seconds=self.executor.submit(_calibrate, rounds).result(),
            max_wait_s=max_wait_s,
            max_admitted=max_pending,
        )
        #: Jobs waiting for a thread: of callers that wait as told, then of the others.
        self._jobs: tuple[deque[tuple[Callable[[], Any], Future[Any]]], ...] = (
            deque(),
            deque(),
        )
        self._jobs_lock = threading.Lock()

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a place in the backlog for a whole login or registration, from before
        its first lookup to its last hash, reserving the hash it will cost. Raises Busy
        at once when the work ahead would take too long: the place is taken when the
        request is admitted, so requests arriving together cannot all pass a check
        before any of them has queued a hash."""
        if _place.get() is not None:  # already holds one (register calls create_user)
            yield
            return
        place = self.backlog.admit(current_caller())
        token = _place.set(place)
        try:
            yield
        finally:
            _place.reset(token)
            self.backlog.leave(place)

    async def run(
        self, fn: Callable[..., T], *args: bytes, work: int | None = None, measured: bool = True
    ) -> T:
        """Run ``fn`` on a thread. Raises Busy when the work ahead is too much, unless
        the caller was admitted already, or when it gets no thread in time. ``work``:
        what it costs bcrypt (2**cost a hash; unset: one hash at ``rounds``).
        ``measured``: it is the work of one hash at ``rounds``, a sample for the pace."""
        if _place.get() is None:  # one hash on its own (changePassword): admitted now
            with self.admitted():
                return await self._queued(fn, args, work, measured)
        return await self._queued(fn, args, work, measured)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _queued(
        self, fn: Callable[..., T], args: tuple[bytes, ...], work: int | None, measured: bool
    ) -> T:
        place = _place.get()
        assert place is not None  # run() admitted it
        queued = self.backlog.queue(place, 2**self.rounds if work is None else work)

        def timed() -> T:
            self.backlog.begin(queued)
            began = time.perf_counter()
            try:
                result = fn(*args)
            except BaseException:
                self.backlog.end(queued)
                raise
            self.backlog.end(queued, time.perf_counter() - began if measured else None)
            return result

        # Callers that wait as told are served first: a flood's hashes, queued first,
        # must not make every other login wait behind them. A thread runs whichever job
        # is first when it frees (_run_next), so no thread waits on the loop.
        job: Future[T] = Future()
        with self._jobs_lock:
            self._jobs[queued.too_soon].append((timed, job))
        self.executor.submit(self._run_next)
        # One that has begun is finished: its work is spent either way, and dropping it
        # would turn admitted logins into busy answers just when the cores are scarce.
        result = asyncio.wrap_future(job)
        await asyncio.wait({result}, timeout=self.backlog.deadline_s())
        if not result.done() and job.cancel():  # still queued: dropped
            self.backlog.drop(queued)
            raise Busy(retry_after_s=self.backlog.retry_after_s(place.too_soon))
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


def _calibrate(rounds: int) -> float:
    """The CPU seconds of one hash at ``rounds``, from one at CALIBRATION_ROUNDS (or
    ``rounds`` if lower): a first estimate of the pace, before any hash is measured."""
    cost = min(rounds, CALIBRATION_ROUNDS)
    started = time.thread_time()
    bcrypt.hashpw(b"calibration", bcrypt.gensalt(cost))
    return math.ldexp(time.thread_time() - started, rounds - cost)


def _lower_priority(niceness: int) -> None:
    """Give a hashing thread its nice value (HASH_NICENESS): above 0 it yields the CPU
    to the event loops, so refresh keeps its latency beside a full backlog, at the
    price of logins under any load that keeps the loops busy. On Linux a thread's nice
    value is its own (setpriority on the calling thread)."""
    if niceness:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, niceness)
