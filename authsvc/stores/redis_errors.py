"""The bound every Redis call runs under: a time limit, and redis-py's errors that mean
Redis cannot answer now turned into the project's own StoreUnavailable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from authsvc.stores.base import StoreUnavailable

#: Unreachable, refused, reset, or slower than the store's timeout.
UNAVAILABLE = (TimeoutError, OSError, RedisConnectionError, RedisTimeoutError)


@asynccontextmanager
async def guarded(timeout_s: float) -> AsyncIterator[None]:
    """Bound a call (or a whole batch of them) in time; raises StoreUnavailable, with
    redis-py's error as its cause, when Redis does not answer."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc
