"""The one translation point for Redis errors: the bound every Redis call runs under (a
time limit), and every answer that means Redis cannot serve now, whether the whole call
failed or one command of a pipeline, turned into the project's own StoreUnavailable
naming its cause (the label of its metric and its log line).

What is left untranslated is a bug of ours (a bad command, a wrong type) and is
answered as one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from authsvc.stores.base import StoreUnavailable

#: What ``guarded`` looks at: redis-py's errors, and the socket's and the timer's. Those
#: that mean "not now" become StoreUnavailable (unavailable_cause); the rest go on.
_EXAMINED = (TimeoutError, OSError, RedisError)

#: Server answers that mean "not now", most specific first (redis-py's classes nest:
#: BusyLoadingError is a ConnectionError, MasterDownError a ClusterDownError).
_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (BusyLoadingError, "loading"),  # LOADING: a restart reading its data back
    (OutOfMemoryError, "out_of_memory"),  # OOM: maxmemory reached with noeviction
    (ReadOnlyError, "read_only"),  # READONLY: a replica, after a failover
    (MasterDownError, "master_down"),  # MASTERDOWN: a replica cut off from its master
    (ClusterDownError, "cluster_down"),  # CLUSTERDOWN: slots without a node
    (TryAgainError, "try_again"),  # TRYAGAIN: a slot moving between nodes
    (RedisTimeoutError, "timeout"),
    (TimeoutError, "timeout"),
    (RedisConnectionError, "connection"),
    (OSError, "connection"),
)


def unavailable_cause(error: BaseException) -> str | None:
    """Why ``error`` means Redis cannot serve now, or None if it means something else."""
    for kind, cause in _CAUSES:
        if isinstance(error, kind):
            return cause
    if isinstance(error, ResponseError) and str(error).startswith("BUSY"):
        return "busy"  # BUSY: a script or module command running past its time limit
    return None


def translated(error: BaseException) -> BaseException:
    """StoreUnavailable for an error that means Redis cannot serve now (``error`` as its
    cause); ``error`` itself otherwise."""
    cause = unavailable_cause(error)
    if cause is None:
        return error
    unavailable = StoreUnavailable(f"Redis unavailable ({cause})", store="redis", cause=cause)
    unavailable.__cause__ = error
    return unavailable


@asynccontextmanager
async def guarded(timeout_s: float) -> AsyncIterator[None]:
    """Bound a call (or a whole batch of them) in time; raises StoreUnavailable, with
    redis-py's error as its cause, when Redis does not answer or cannot serve now."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except _EXAMINED as exc:
        error = translated(exc)
        if error is exc:
            raise
        raise error from exc
