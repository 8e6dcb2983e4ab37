"""Sessions in Redis through redis.asyncio.

One hash per session at ``<prefix>session:{<user id>}:<session id>``: the braces are a
Redis Cluster hash tag, so every key of one user lives in one slot. The key expires at
the session's absolute end (PEXPIREAT), which using it does not extend.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from authsvc.stores.base import Session, StoreUnavailable

_UNAVAILABLE = (TimeoutError, OSError, RedisConnectionError, RedisTimeoutError)

# Check-and-set in one round trip: the session must exist and hold this refresh jti.
_TOUCH = """
if redis.call('HGET', KEYS[1], 'refresh_jti_hash') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'last_used_at', ARGV[2])
return 1
"""


class RedisSessionStore:
    def __init__(self, client: redis.Redis, *, key_prefix: str, timeout_s: float) -> None:
        self._client = client
        self._prefix = key_prefix
        self._timeout_s = timeout_s
        self._touch = client.register_script(_TOUCH)

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str, timeout_s: float) -> RedisSessionStore:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )
        return cls(client, key_prefix=key_prefix, timeout_s=timeout_s)

    def key(self, user_id: str, session_id: str) -> str:
        return f"{self._prefix}session:{{{user_id}}}:{session_id}"

    async def ping(self) -> None:
        """Raises StoreUnavailable unless the server answers."""
        async with self._guard():
            await self._client.ping()

    async def create(self, session: Session) -> None:
        key = self.key(session.user_id, session.id)
        async with self._guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "refresh_jti_hash": session.refresh_jti_hash,
                    "created_at": _ms(session.created_at),
                    "last_used_at": _ms(session.last_used_at),
                    "expires_at": _ms(session.expires_at),
                    "user_agent": session.user_agent,
                    "ip": session.ip,
                },
            )
            pipe.pexpireat(key, _ms(session.expires_at))
            await pipe.execute()

    async def get(self, user_id: str, session_id: str) -> Session | None:
        async with self._guard():
            # decode_responses=True: every field is a str.
            fields: dict[str, str] = await self._client.hgetall(  # type: ignore[assignment]
                self.key(user_id, session_id)
            )
        if not fields:
            return None
        return Session(
            id=session_id,
            user_id=user_id,
            refresh_jti_hash=fields["refresh_jti_hash"],
            created_at=_datetime(fields["created_at"]),
            last_used_at=_datetime(fields["last_used_at"]),
            expires_at=_datetime(fields["expires_at"]),
            user_agent=fields.get("user_agent", ""),
            ip=fields.get("ip", ""),
        )

    async def touch(
        self, user_id: str, session_id: str, refresh_jti_hash: str, now: datetime
    ) -> bool:
        async with self._guard():
            done = await self._touch(
                keys=[self.key(user_id, session_id)], args=[refresh_jti_hash, _ms(now)]
            )
        return bool(done)

    async def delete(self, user_id: str, session_id: str) -> bool:
        async with self._guard():
            return bool(await self._client.delete(self.key(user_id, session_id)))

    async def close(self) -> None:
        await self._client.aclose()

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        """Bound the call in time and translate redis-py's errors."""
        try:
            async with asyncio.timeout(self._timeout_s):
                yield
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"Redis unavailable: {type(exc).__name__}") from exc


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _datetime(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)
