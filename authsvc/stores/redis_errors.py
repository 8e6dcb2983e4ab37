"""The one translation point for Redis errors: the bound every Redis call runs under (a
time limit), and every answer that means Redis cannot serve now, whether the whole call
failed or one command of a pipeline, turned into the project's own StoreUnavailable
naming its cause (the label of its metric and its log line).

What is left untranslated is a bug of ours (a bad command, a wrong type) and is
answered as one.

The cluster client handles some answers itself and raises what it gave up with: a
command retries TRYAGAIN and follows ASK/MOVED until its TTL (16 tries) runs out, then
raises a bare ClusterError; a transaction (no retries: connect() sets none) raises the
ASK or MOVED it met; after CLUSTERDOWN the client refreshes its slot map, and a map
with a slot that no node serves, or no node to ask, raises a RedisClusterException,
which is not a RedisError. tests/e2e/test_cluster_refusals.py makes each for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    RedisClusterUnreachableError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from authsvc.stores.base import StoreUnavailable

#: What ``guarded`` looks at: redis-py's errors (the cluster client's too), and the
#: socket's and the timer's. Those that mean "not now" become StoreUnavailable
#: (unavailable_cause); the rest go on.
_EXAMINED = (TimeoutError, OSError, RedisError, RedisClusterException)

#: Server answers that mean "not now", most specific first (redis-py's classes nest:
#: BusyLoadingError is a ConnectionError, MasterDownError a ClusterDownError, which is
#: a ClusterError; MovedError is an AskError).
_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (BusyLoadingError, "loading"),  # LOADING: a restart reading its data back
    (OutOfMemoryError, "out_of_memory"),  # OOM: maxmemory reached with noeviction
    (ReadOnlyError, "read_only"),  # READONLY: a replica, after a failover
    (MasterDownError, "master_down"),  # MASTERDOWN: a replica cut off from its master
    (ClusterDownError, "cluster_down"),  # CLUSTERDOWN: slots without a node
    (SlotNotCoveredError, "cluster_down"),  # the cluster client's map: the same
    (TryAgainError, "try_again"),  # TRYAGAIN: a slot moving between nodes
    (ClusterError, "try_again"),  # the cluster client's TTL spent on TRYAGAIN, ASK, MOVED
    (AskError, "try_again"),  # ASK/MOVED a transaction does not follow: the slot moves
    (RedisClusterUnreachableError, "connection"),  # no node of the cluster answers
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
    if isinstance(error, RedisClusterException) and str(error).startswith(
        "All slots are not covered"
    ):
        return "cluster_down"  # the slot map refreshed after CLUSTERDOWN has a hole
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
