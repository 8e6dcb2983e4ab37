"""Sessions in Redis through redis.asyncio.

One hash per session at ``<prefix>session:{<user id>}:<session id>``, a set of the
user's session ids at ``<prefix>sessions:{<user id>}`` and the user's revocation epoch
at ``<prefix>epoch:{<user id>}`` (absent: 0). The braces are a Redis Cluster hash tag,
so every key of one user lives in one slot and multi-key commands and scripts over
them work on a cluster too. A session key expires at the session's absolute end
(PEXPIREAT), which using it does not extend; the epoch key outlives every session.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection
from redis.backoff import NoBackoff

from authsvc.stores.base import (
    EPOCH_MIN_TTL_S,
    Counter,
    LimitReached,
    RefreshUse,
    Session,
    StoreUnavailable,
    UseLimit,
)
from authsvc.stores.redis_batch import CommandBatcher
from authsvc.stores.redis_errors import guarded

log = logging.getLogger(__name__)

#: The key readiness writes (RedisSessionStore.ping) lives this long.
READINESS_KEY_TTL_MS = 10_000

# One round trip, atomic: count the use against the session's limit, then judge the
# presented refresh token and act on it (SessionStore.use_refresh).
# KEYS: session hash, user index, use counter, user epoch (all under the user's hash tag).
# ARGV: presented hash, rotate-to hash or '', now ms, grace ms, idle ms (0: off), sid,
# limit (0: off), limit window ms. Over the limit: {'limited', ms until the window ends}.
# A session without an epoch field (made by a version before epochs, e.g. an old
# worker during a rolling upgrade) counts as current: revoke_all deletes it as before.
_USE_REFRESH = """
if tonumber(ARGV[7]) > 0 then
  local uses = redis.call('INCR', KEYS[3])
  if uses == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[8]) end
  if uses > tonumber(ARGV[7]) then return {'limited', redis.call('PTTL', KEYS[3])} end
end
local s = redis.call('HMGET', KEYS[1], 'refresh_jti_hash', 'parent_jti_hash',
                     'rotated_at', 'last_used_at', 'epoch')
if not s[1] then return 'missing' end
-- Now is the later of the caller's clock and Redis's own: a call that Redis runs late
-- (it stalled, the caller gave up and answered "unavailable") stamps its rotation with
-- when it really happened, so the client's retry still falls inside the grace window.
local t = redis.call('TIME')
local now = math.max(tonumber(ARGV[3]), tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local stamp = string.format('%d', now)
local idle = tonumber(ARGV[5])
if (s[5] and s[5] ~= (redis.call('GET', KEYS[4]) or '0')) or
   (idle > 0 and now - tonumber(s[4]) > idle) then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[6])
  return 'missing'
end
if s[1] == ARGV[1] then
  if ARGV[2] ~= '' then
    redis.call('HSET', KEYS[1], 'parent_jti_hash', ARGV[1], 'refresh_jti_hash', ARGV[2],
               'rotated_at', stamp, 'last_used_at', stamp)
  else
    redis.call('HSET', KEYS[1], 'last_used_at', stamp)
  end
  return 'current'
end
if s[2] and s[2] == ARGV[1] and now - tonumber(s[3]) <= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'last_used_at', stamp)
  return 'grace'
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[6])
return 'reused'
"""


# Whether a session is live and of its user's current epoch (SessionStore.exists;
# no epoch field: as in _USE_REFRESH). KEYS: session hash, user epoch.
_EXISTS = """
local s = redis.call('HMGET', KEYS[1], 'refresh_jti_hash', 'epoch')
if not s[1] then return 0 end
if s[2] and s[2] ~= (redis.call('GET', KEYS[2]) or '0') then return 0 end
return 1
"""

# Store a session only if the epoch it was made under is still its user's
# (SessionStore.create). The epoch key, if any, is kept until the session's end.
# KEYS: session hash, user index, user epoch. ARGV: epoch, end ms, sid, field, value, …
_CREATE = """
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
-- The index lives as long as the user's longest session: NX sets the first expiry, GT
-- only ever extends it. So does the epoch, once there is one.
redis.call('PEXPIREAT', KEYS[2], ARGV[2], 'NX')
redis.call('PEXPIREAT', KEYS[2], ARGV[2], 'GT')
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIREAT', KEYS[3], ARGV[2], 'GT') end
return 1
"""

# Bump the user's epoch, and re-stamp the kept session (if live and of the old epoch)
# with the new one, atomically (SessionStore.revoke_all). The epoch then lives as long
# as the longest session it may have to refuse (the index's expiry) and at least
# ARGV[1] ms. KEYS: user epoch, user index, kept session hash (optional). Returns the
# new epoch.
_BUMP_EPOCH = """
local old = redis.call('GET', KEYS[1]) or '0'
local new = redis.call('INCR', KEYS[1])
local ttl = math.max(tonumber(ARGV[1]), redis.call('PTTL', KEYS[1]),
                     redis.call('PTTL', KEYS[2]))
redis.call('PEXPIRE', KEYS[1], ttl)
if KEYS[3] then
  local kept = redis.call('HMGET', KEYS[3], 'refresh_jti_hash', 'epoch')
  if kept[1] and (kept[2] or old) == old then redis.call('HSET', KEYS[3], 'epoch', new) end
end
return new
"""

# INCR, and start the window on the first hit: one round trip, atomic.
_INCREMENT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}
"""

# DECR a live counter, never below zero; DECR keeps the key's expiry (its window).
_DECREMENT = """
if (tonumber(redis.call('GET', KEYS[1])) or 0) > 0 then redis.call('DECR', KEYS[1]) end
"""


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str  # redis:// or rediss://; with sentinels, only its options and database count
    timeout_s: float
    cluster: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = "mymaster"


def connect(config: RedisConfig) -> Any:
    """A client for a single server, a Redis Cluster, or the master that Sentinel names
    (followed through failovers). Every store uses only commands that work on all three:
    keys of one user share a hash tag, so multi-key commands stay in one slot."""
    # No socket timeout (redis-py's default is 5 s): every store call is bounded by
    # the store's own timeout, one timer per call, or per batch on the hot path.
    # redis-py's would add a task to every send and a timer to every reply it reads.
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": None,
        "socket_connect_timeout": config.timeout_s,
    }
    if config.sentinels:
        sentinel = Sentinel(list(config.sentinels), sentinel_kwargs=options, **options)
        return sentinel.master_for(
            config.sentinel_master,
            redis_class=redis.Redis,
            connection_class=SentinelMasterConnection,
            retry=stale_connection_retry(),
        )
    if config.cluster:
        return RedisCluster.from_url(config.url, retry=stale_connection_retry(), **options)
    return redis.Redis.from_url(
        config.url, health_check_interval=30, retry=stale_connection_retry(), **options
    )


class SentinelMasterConnection(SentinelManagedConnection):
    """A connection to the master that Sentinel names, which asks Sentinel again on every
    reconnect. redis-py's asks only when the pool hands out a closed connection: one
    that a demoted master refused (READONLY: it drops the connection and raises), and
    that its retry then sends on again, reconnects to the address it had, the old
    master, and fails the same way. Asked here, the retry goes to the new master."""

    _address_asked = False  # connect_to has just asked Sentinel: no need to again

    async def connect_to(self, address: tuple[str, int]) -> None:
        self._address_asked = True
        try:
            await super().connect_to(address)  # type: ignore[no-untyped-call]
        finally:
            self._address_asked = False

    async def _connect(self) -> None:
        # A round trip to Sentinel per new connection, not per command.
        if self.connection_pool.is_master and not self._address_asked:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super()._connect()  # type: ignore[no-untyped-call]


def stale_connection_retry() -> Retry:
    """The one policy of every topology: a command whose connection fails is sent once
    more, at once, on a fresh connection (redis-py's default for a single server is ten
    tries with backoff, for Sentinel and Cluster none).

    Once is what a pooled connection that a restart or failover closed needs, and what
    an unreachable server is worth: it is answered at once, not after backoff that
    spends the store timeout. Timeouts are not retried (the server is slow: asking
    twice doubles its work). A repeated command is safe here even when the first did
    run and only its reply was lost: a repeated rotation falls in the reuse grace
    window and yields the same child token (core/sessions.py, child_jti), creating a
    session or bumping an epoch again changes nothing more, and a rate-limit count
    counts one attempt twice at worst, in a fault, which errs on the strict side."""
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


async def open_client(config: RedisConfig, *, during_outage: bool = False) -> Any:
    """``connect``, then one round trip: it fails now, clearly, when the server cannot
    be reached (StoreUnavailable), and a Cluster client learns its nodes before the
    first burst of concurrent calls (which it does not survive on a cold start).
    ``during_outage``: an unreachable server is logged and the client returned anyway;
    it connects (a Cluster client learns its nodes) on its first call after the return."""
    client = connect(config)
    try:
        async with guarded(config.timeout_s):
            await client.ping()
    except StoreUnavailable as exc:
        if not during_outage:
            await close(client)
            raise
        log.warning("starting without Redis, connecting when it returns: %s", exc)
    except BaseException:
        await close(client)
        raise
    return client


async def close(client: Any) -> None:
    """Close a client of ``connect``, with the connections to the sentinels, if any."""
    await client.aclose()
    pool = getattr(client, "connection_pool", None)
    manager = getattr(pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


class RedisCounterStore:
    """Rate-limit counters at ``<prefix>rl:<key>``, expiring with their window.
    ``batch``: the session store's, so that counts and session commands issued in one
    event-loop turn share a pipeline. (Refreshes per session are counted by the
    refresh script itself: RedisSessionStore.use_refresh.)"""

    def __init__(
        self,
        client: redis.Redis,
        *,
        key_prefix: str,
        timeout_s: float,
        batch: CommandBatcher | None = None,
    ) -> None:
        self._client = client
        self._prefix = key_prefix + "rl:"
        self._timeout_s = timeout_s
        self._increment = client.register_script(_INCREMENT)
        self._decrement = client.register_script(_DECREMENT)
        self._batch = batch or CommandBatcher(client, timeout_s)

    async def increment(self, key: str, window_s: float) -> Counter:
        count, ttl_ms = await self._batch.evalsha(
            self._increment, keys=[self._prefix + key], args=[_window_ms(window_s)]
        )
        return Counter(int(count), _in_ms(int(ttl_ms)))

    async def peek(self, key: str) -> Counter | None:
        async with guarded(self._timeout_s), self._client.pipeline(transaction=True) as pipe:
            pipe.get(self._prefix + key)
            pipe.pttl(self._prefix + key)
            count, ttl_ms = await pipe.execute()
        if count is None or int(ttl_ms) <= 0:
            return None
        return Counter(int(count), _in_ms(int(ttl_ms)))

    async def decrement(self, key: str) -> None:
        await self._batch.evalsha(self._decrement, keys=[self._prefix + key], args=[])

    async def reset(self, key: str) -> None:
        async with guarded(self._timeout_s):
            await self._client.delete(self._prefix + key)


class RedisSessionStore:
    def __init__(self, client: redis.Redis, *, key_prefix: str, timeout_s: float) -> None:
        self._client = client
        self._prefix = key_prefix
        self._timeout_s = timeout_s
        self._use_refresh = client.register_script(_USE_REFRESH)
        self._exists = client.register_script(_EXISTS)
        self._create = client.register_script(_CREATE)
        self._bump_epoch = client.register_script(_BUMP_EPOCH)
        # The hot-path commands (refresh, session checks): bounded in time, and their
        # errors translated, by the batcher.
        self._batch = CommandBatcher(client, timeout_s)

    @property
    def client(self) -> redis.Redis:
        """The connection pool, for the other stores that live in the same Redis."""
        return self._client

    @property
    def batch(self) -> CommandBatcher:
        """The command batcher, for the other stores that live in the same Redis."""
        return self._batch

    @classmethod
    def from_url(cls, url: str, *, key_prefix: str, timeout_s: float) -> RedisSessionStore:
        client = connect(RedisConfig(url, timeout_s))
        return cls(client, key_prefix=key_prefix, timeout_s=timeout_s)

    def key(self, user_id: str, session_id: str) -> str:
        return f"{self._prefix}session:{{{user_id}}}:{session_id}"

    def index_key(self, user_id: str) -> str:
        return f"{self._prefix}sessions:{{{user_id}}}"

    def use_counter_key(self, user_id: str, session_id: str) -> str:
        return f"{self._prefix}rl:refresh:{{{user_id}}}:{session_id}"

    def epoch_key(self, user_id: str) -> str:
        return f"{self._prefix}epoch:{{{user_id}}}"

    async def ping(self) -> None:
        """Raises StoreUnavailable unless the server answers and takes a write: a full
        server (OOM), a replica after a failover (READONLY) or one still loading answers
        PING, but could not create a single session."""
        async with self._guard():
            await self._client.set(f"{self._prefix}readiness", b"1", px=READINESS_KEY_TTL_MS)

    async def epoch(self, user_id: str) -> int:
        return int(await self._batch.execute("GET", self.epoch_key(user_id)) or 0)

    async def create(self, session: Session) -> bool:
        fields = [item for pair in _fields(session).items() for item in pair]
        created = await self._batch.evalsha(
            self._create,
            keys=[
                self.key(session.user_id, session.id),
                self.index_key(session.user_id),
                self.epoch_key(session.user_id),
            ],
            args=[session.epoch, _ms(session.expires_at), session.id, *fields],
        )
        return bool(created)

    async def exists(self, user_id: str, session_id: str) -> bool:
        keys = [self.key(user_id, session_id), self.epoch_key(user_id)]
        return bool(await self._batch.evalsha(self._exists, keys=keys, args=[]))

    async def get(self, user_id: str, session_id: str) -> Session | None:
        async with self._guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.key(user_id, session_id))
            pipe.get(self.epoch_key(user_id))
            fields, epoch = await pipe.execute()
        return _session(user_id, session_id, fields, int(epoch or 0))

    async def use_refresh(
        self,
        user_id: str,
        session_id: str,
        presented_jti_hash: str,
        *,
        rotate_to: str | None,
        now: datetime,
        grace_s: float,
        idle_timeout_s: float,
        limit: UseLimit | None = None,
    ) -> RefreshUse:
        outcome = await self._batch.evalsha(
            self._use_refresh,
            keys=[
                self.key(user_id, session_id),
                self.index_key(user_id),
                self.use_counter_key(user_id, session_id),
                self.epoch_key(user_id),
            ],
            args=[
                presented_jti_hash,
                rotate_to or "",
                _ms(now),
                int(grace_s * 1000),
                int(idle_timeout_s * 1000),
                session_id,
                limit.max if limit else 0,
                _window_ms(limit.window_s) if limit else 0,
            ],
        )
        if isinstance(outcome, list):  # over the limit: nothing was judged
            raise LimitReached(_in_ms(int(outcome[1])))
        return RefreshUse(outcome)

    async def list_for_user(self, user_id: str) -> list[Session]:
        index = self.index_key(user_id)
        async with self._guard():
            session_ids = sorted(await self._members(index))
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(self.epoch_key(user_id))
                for session_id in session_ids:
                    pipe.hgetall(self.key(user_id, session_id))
                epoch, *rows = await pipe.execute()
            gone = [sid for sid, fields in zip(session_ids, rows, strict=True) if not fields]
            if gone:  # expired keys leave their ids behind in the index
                await self._client.srem(index, *gone)
        sessions = [
            _session(user_id, sid, f, int(epoch or 0))
            for sid, f in zip(session_ids, rows, strict=True)
        ]
        return sorted((s for s in sessions if s is not None), key=lambda s: s.created_at)

    async def delete(self, user_id: str, session_id: str) -> bool:
        async with self._guard(), self._client.pipeline(transaction=True) as pipe:
            pipe.delete(self.key(user_id, session_id))
            pipe.srem(self.index_key(user_id), session_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def revoke_all(self, user_id: str, keep: str | None = None) -> int:
        index = self.index_key(user_id)
        keys = [self.epoch_key(user_id), index]
        if keep is not None:
            keys.append(self.key(user_id, keep))
        async with self._guard():
            # From here on every other session of the user is refused everywhere; what
            # follows only removes them.
            floor_ms = int(EPOCH_MIN_TTL_S * 1000)
            epoch = str(await self._batch.evalsha(self._bump_epoch, keys=keys, args=[floor_ms]))
            session_ids = sorted(sid for sid in await self._members(index) if sid != keep)
            if not session_ids:
                return 0
            async with self._client.pipeline(transaction=False) as pipe:
                for session_id in session_ids:
                    pipe.hget(self.key(user_id, session_id), "epoch")
                epochs = await pipe.execute()
            # A session of the new epoch was made by a login that began after the bump;
            # one with none, by a version before epochs: revoked, as it always was.
            revoked = [sid for sid, e in zip(session_ids, epochs, strict=True) if e != epoch]
            if not revoked:
                return 0
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(*(self.key(user_id, sid) for sid in revoked))
                pipe.srem(index, *revoked)
                deleted, _ = await pipe.execute()
        return int(deleted)

    async def close(self) -> None:
        await close(self._client)

    async def _members(self, key: str) -> set[str]:
        members: set[str] = await self._client.smembers(key)  # type: ignore[assignment]
        return members

    async def _hgetall(self, key: str) -> dict[str, str]:
        # decode_responses=True: every field is a str.
        fields: dict[str, str] = await self._client.hgetall(key)  # type: ignore[assignment]
        return fields

    def _guard(self) -> AbstractAsyncContextManager[None]:
        return guarded(self._timeout_s)


def _fields(session: Session) -> dict[Any, str | int]:
    fields: dict[Any, str | int] = {
        "refresh_jti_hash": session.refresh_jti_hash,
        "created_at": _ms(session.created_at),
        "last_used_at": _ms(session.last_used_at),
        "expires_at": _ms(session.expires_at),
        "user_agent": session.user_agent,
        "ip": session.ip,
        "epoch": session.epoch,
    }
    if session.parent_jti_hash and session.rotated_at is not None:
        fields["parent_jti_hash"] = session.parent_jti_hash
        fields["rotated_at"] = _ms(session.rotated_at)
    return fields


def _session(
    user_id: str, session_id: str, fields: dict[str, str], user_epoch: int
) -> Session | None:
    """The session of ``fields``, None if there are none or it is of an older epoch
    (one with no epoch, made by a version before epochs, is of the current one)."""
    epoch = int(fields.get("epoch", user_epoch)) if fields else 0
    if not fields or epoch != user_epoch:
        return None
    rotated_at = fields.get("rotated_at")
    return Session(
        id=session_id,
        user_id=user_id,
        refresh_jti_hash=fields["refresh_jti_hash"],
        created_at=_datetime(fields["created_at"]),
        last_used_at=_datetime(fields["last_used_at"]),
        expires_at=_datetime(fields["expires_at"]),
        user_agent=fields.get("user_agent", ""),
        ip=fields.get("ip", ""),
        parent_jti_hash=fields.get("parent_jti_hash", ""),
        rotated_at=_datetime(rotated_at) if rotated_at else None,
        epoch=epoch,
    )


def _in_ms(ms: int) -> datetime:
    return datetime.now(UTC) + timedelta(milliseconds=max(ms, 0))


def _window_ms(window_s: float) -> int:
    """A counter window for PEXPIRE: whole milliseconds, at least one."""
    return max(1, int(window_s * 1000))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _datetime(ms: str) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)
