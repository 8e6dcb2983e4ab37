"""The embedded store: users and sessions in one local SQLite file (aiosqlite).

For development and small single-host setups, so the service starts with no servers.
Single statements run in autocommit mode; a check-and-set (``use_refresh``) runs in a
BEGIN IMMEDIATE transaction, which also holds off other processes, so it is as atomic as
the Redis script.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from authsvc.stores.base import (
    Counter,
    LimitReached,
    RefreshUse,
    Session,
    StoreUnavailable,
    UniqueViolation,
    UseLimit,
)
from authsvc.stores.migrations import Applied, EmailRule, apply, pending
from authsvc.stores.sql import SQLUserStore

_SESSION_COLUMNS = (
    "id, user_id, refresh_jti_hash, created_at, last_used_at, expires_at, user_agent, ip,"
    " parent_jti_hash, rotated_at, epoch"
)
_SELECT_SESSIONS = f"SELECT {_SESSION_COLUMNS} FROM sessions"  # noqa: S608
_USER_EPOCH = "SELECT epoch FROM revocation_epochs WHERE user_id = ?"
# Live: not expired, and made under its user's current epoch (no row: 0).
_LIVE = (
    " AND expires_at > ? AND epoch = COALESCE("
    "(SELECT e.epoch FROM revocation_epochs e WHERE e.user_id = sessions.user_id), 0)"
)
_SESSION_BY_ID = _SELECT_SESSIONS + " WHERE id = ? AND user_id = ?" + _LIVE
_SESSIONS_OF_USER = _SELECT_SESSIONS + " WHERE user_id = ?" + _LIVE + " ORDER BY created_at, id"
_INSERT_SESSION = f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES ({', '.join('?' * 11)})"  # noqa: S608


class SQLiteDatabase:
    """One aiosqlite connection with translated errors and a bound on each call.

    Calls take turns through a lock: on one connection, a statement of another task
    would otherwise land inside an open transaction.
    """

    def __init__(self, conn: aiosqlite.Connection, timeout_s: float) -> None:
        self._conn = conn
        self._timeout_s = timeout_s
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, timeout_s: float) -> SQLiteDatabase:
        _private_file(Path(path))
        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        return cls(conn, timeout_s)

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self._lock:
            return await self._fetchone(sql, args)

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return await self._fetchall(sql, args)

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        async with self._lock:
            return await self._execute(sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error), holding the write lock."""
        async with self._lock:
            await self._execute("BEGIN IMMEDIATE")
            tx = Transaction(self)
            try:
                yield tx
            except BaseException:
                await self._conn.rollback()
                raise
            await self._execute("COMMIT")
        for callback in tx.committed:  # Transaction.after_commit
            callback()

    async def ping(self) -> None:
        """Raises StoreUnavailable unless the file answers."""
        await self.fetchone("SELECT 1")

    async def close(self) -> None:
        await self._conn.close()

    async def _fetchone(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self._guard(), self._conn.execute(sql, tuple(args)) as cur:
            return await cur.fetchone()

    async def _fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._guard(), self._conn.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self._guard(), self._conn.execute(sql, tuple(args)) as cur:
            return cur.rowcount

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._timeout_s):
                yield
        except sqlite3.IntegrityError as exc:
            if str(exc).startswith("UNIQUE constraint failed"):
                raise UniqueViolation(str(exc)) from exc
            raise
        except (TimeoutError, sqlite3.OperationalError, ValueError) as exc:
            # OperationalError: locked, disk full, unreadable; ValueError: closed.
            raise StoreUnavailable(f"SQLite unavailable: {exc}", store="embedded") from exc


class Transaction:
    """The statements of an open transaction (the database lock is already held)."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self.fetchone = db._fetchone
        self.fetchall = db._fetchall
        self.execute = db._execute
        self.committed: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the transaction has committed (never after a rollback)."""
        self.committed.append(callback)


class SQLiteUserStore(SQLUserStore):
    placeholder = "?"

    @staticmethod
    def encode_time(moment: datetime) -> int:
        return _ms(moment)

    @staticmethod
    def decode_time(value: Any) -> datetime:
        assert isinstance(value, int)
        return _datetime(value)


class SQLiteSessionStore:
    """Expired rows are invisible to every call and pruned as new sessions arrive.
    Revocation epochs are kept for good: one small row per user ever revoked."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def epoch(self, user_id: str) -> int:
        row = await self._db.fetchone(_USER_EPOCH, (user_id,))
        return int(row[0]) if row else 0

    async def create(self, session: Session) -> bool:
        await self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (_now_ms(),))
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_USER_EPOCH, (session.user_id,))
            if (int(row[0]) if row else 0) != session.epoch:
                return False  # revoked while the login was checking the password
            await tx.execute(
                _INSERT_SESSION,
                (
                    session.id,
                    session.user_id,
                    session.refresh_jti_hash,
                    _ms(session.created_at),
                    _ms(session.last_used_at),
                    _ms(session.expires_at),
                    session.user_agent,
                    session.ip,
                    session.parent_jti_hash,
                    _ms(session.rotated_at) if session.rotated_at else 0,
                    session.epoch,
                ),
            )
        return True

    async def get(self, user_id: str, session_id: str) -> Session | None:
        return _session(await self._db.fetchone(_SESSION_BY_ID, (session_id, user_id, _now_ms())))

    async def exists(self, user_id: str, session_id: str) -> bool:
        return await self.get(user_id, session_id) is not None

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
        reached: datetime | None = None
        async with self._db.transaction() as tx:
            if limit is not None:
                uses = await _count(tx, f"refresh:{user_id}:{session_id}", limit.window_s)
                if uses.count > limit.max:
                    reached = uses.resets_at
            if reached is None:
                return await _judge(
                    tx, user_id, session_id, presented_jti_hash, rotate_to, _ms(now), grace_s,
                    idle_timeout_s,
                )  # fmt: skip
        raise LimitReached(reached)  # after the commit: the use stays counted

    async def list_for_user(self, user_id: str) -> list[Session]:
        rows = await self._db.fetchall(_SESSIONS_OF_USER, (user_id, _now_ms()))
        return [session for row in rows if (session := _session(row)) is not None]

    async def delete(self, user_id: str, session_id: str) -> bool:
        changed = await self._db.execute(
            "DELETE FROM sessions WHERE id = ? AND user_id = ? AND expires_at > ?",
            (session_id, user_id, _now_ms()),
        )
        return changed == 1

    async def revoke_all(self, user_id: str, keep: str | None = None) -> int:
        # One transaction: the bump, the re-stamp and the deletes are one step here.
        async with self._db.transaction() as tx:
            row = await tx.fetchone(_USER_EPOCH, (user_id,))
            old = int(row[0]) if row else 0
            await tx.execute(
                "INSERT INTO revocation_epochs (user_id, epoch) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO UPDATE SET epoch = excluded.epoch",
                (user_id, old + 1),
            )
            await tx.execute(
                "UPDATE sessions SET epoch = ? WHERE id = ? AND user_id = ? AND epoch = ?",
                (old + 1, keep or "", user_id, old),
            )
            live = await tx.fetchone(
                "SELECT COUNT(*) FROM sessions WHERE user_id = ? AND id != ? AND epoch = ?"
                " AND expires_at > ?",
                (user_id, keep or "", old, _now_ms()),
            )
            # Expired rows and those of older epochs (a revocation cut short) go too.
            await tx.execute(
                "DELETE FROM sessions WHERE user_id = ? AND id != ?", (user_id, keep or "")
            )
        return int(live[0]) if live else 0


class SQLiteCounterStore:
    """Rate-limit counters in the embedded file; expired rows count as absent."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def increment(self, key: str, window_s: float) -> Counter:
        async with self._db.transaction() as tx:
            return await _count(tx, key, window_s)

    async def peek(self, key: str) -> Counter | None:
        row = await self._db.fetchone(
            "SELECT count, resets_at FROM rate_counters WHERE key = ? AND resets_at > ?",
            (key, _now_ms()),
        )
        return Counter(row[0], _datetime(row[1])) if row else None

    async def decrement(self, key: str) -> None:
        await self._db.execute(
            "UPDATE rate_counters SET count = count - 1"
            " WHERE key = ? AND resets_at > ? AND count > 0",
            (key, _now_ms()),
        )

    async def reset(self, key: str) -> None:
        await self._db.execute("DELETE FROM rate_counters WHERE key = ?", (key,))


async def _judge(
    tx: Transaction,
    user_id: str,
    session_id: str,
    presented_jti_hash: str,
    rotate_to: str | None,
    now_ms: int,
    grace_s: float,
    idle_timeout_s: float,
) -> RefreshUse:
    """SessionStore.use_refresh's judgement, inside the caller's transaction."""
    session = _session(await tx.fetchone(_SESSION_BY_ID, (session_id, user_id, _now_ms())))
    if session is None:  # never was, expired, deleted, or revoked (an older epoch)
        return RefreshUse.MISSING
    idle_ms = (now_ms - _ms(session.last_used_at)) if idle_timeout_s else 0
    if idle_ms > idle_timeout_s * 1000:
        await tx.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        return RefreshUse.MISSING
    if presented_jti_hash == session.refresh_jti_hash:
        if rotate_to:
            await tx.execute(
                "UPDATE sessions SET parent_jti_hash = refresh_jti_hash,"
                " refresh_jti_hash = ?, rotated_at = ?, last_used_at = ? WHERE id = ?",
                (rotate_to, now_ms, now_ms, session_id),
            )
        else:
            await tx.execute(
                "UPDATE sessions SET last_used_at = ? WHERE id = ?", (now_ms, session_id)
            )
        return RefreshUse.CURRENT
    rotated_ms = _ms(session.rotated_at) if session.rotated_at else 0
    if (
        session.parent_jti_hash
        and presented_jti_hash == session.parent_jti_hash
        and now_ms - rotated_ms <= grace_s * 1000
    ):
        await tx.execute("UPDATE sessions SET last_used_at = ? WHERE id = ?", (now_ms, session_id))
        return RefreshUse.GRACE
    await tx.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
    return RefreshUse.REUSED


async def _count(tx: Transaction, key: str, window_s: float) -> Counter:
    """One hit of a fixed-window counter, inside the caller's transaction."""
    now = _now_ms()
    row = await tx.fetchone(
        "SELECT count, resets_at FROM rate_counters WHERE key = ? AND resets_at > ?",
        (key, now),
    )
    if row is None:  # a new window: a moment to drop the windows that passed
        await tx.execute("DELETE FROM rate_counters WHERE resets_at <= ?", (now,))
    count, resets_at = (row[0] + 1, row[1]) if row else (1, now + int(window_s * 1000))
    await tx.execute(
        "INSERT INTO rate_counters (key, count, resets_at) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET count = excluded.count,"
        " resets_at = excluded.resets_at",
        (key, count, resets_at),
    )
    return Counter(count, _datetime(resets_at))


async def migrate(db: SQLiteDatabase, *, email_rule: EmailRule) -> list[Applied]:
    """Apply pending migrations; returns those applied. BEGIN IMMEDIATE: one process
    migrates, the others wait their turn. ``email_rule`` is the core's normalize_email,
    for the data step that applies it."""
    async with db.transaction() as tx:
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at INTEGER NOT NULL)"
        )
        applied = {row[0] for row in await tx.fetchall("SELECT version FROM schema_migrations")}
        done = []
        for migration in pending("sqlite", applied):
            done.append(await apply(tx, migration, "?", email_rule))
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, _now_ms()),
            )
    return done


def _private_file(path: Path) -> None:
    """Make the database file readable by its owner only (it holds password hashes and
    sessions): a new folder 0700, the file 0600 before SQLite opens it (its -wal and
    -shm files take the file's mode), an existing file of ours that others could read
    tightened. A folder that exists is left as it is (it may be /tmp or a shared one)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        status = os.fstat(fd)
        if status.st_mode & 0o077 and status.st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _session(row: sqlite3.Row | None) -> Session | None:
    if row is None:
        return None
    return Session(
        id=row[0],
        user_id=row[1],
        refresh_jti_hash=row[2],
        created_at=_datetime(row[3]),
        last_used_at=_datetime(row[4]),
        expires_at=_datetime(row[5]),
        user_agent=row[6],
        ip=row[7],
        parent_jti_hash=row[8],
        rotated_at=_datetime(row[9]) if row[9] else None,
        epoch=row[10],
    )


def _now_ms() -> int:
    """Expiry is judged by wall time, as Redis judges its TTLs."""
    return int(time.time() * 1000)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
