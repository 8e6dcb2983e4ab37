"""redis-py's errors that mean Redis cannot answer now, as the project's own."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from authsvc.stores.base import StoreUnavailable

#: Unreachable, refused, reset, or slower than the store's timeout.
UNAVAILABLE = (TimeoutError, OSError, RedisConnectionError, RedisTimeoutError)


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The StoreUnavailable that stands for ``exc`` (kept as its cause)."""
    error = StoreUnavailable(f"Redis unavailable: {type(exc).__name__}")
    error.__cause__ = exc
    return error
