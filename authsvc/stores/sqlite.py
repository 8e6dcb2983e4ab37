"""The embedded store: users and sessions in one local SQLite file (aiosqlite).

For development and small single-host setups, so the service starts with no servers.
Every statement runs in autocommit mode and each write is one statement, so the
check-and-set of ``touch`` and the delete of ``delete`` are atomic as in Redis.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from authsvc.stores.base import Session, StoreUnavailable, UniqueViolation
from authsvc.stores.migrations import Migration, pending
from authsvc.stores.sql import SQLUserStore

_SESSION_BY_ID = (
    "SELECT id, user_id, refresh_jti_hash, created_at, last_used_at, expires_at, user_agent, ip"
    " FROM sessions WHERE id = ? AND user_id = ? AND expires_at > ?"
)
_INSERT_SESSION = (
    "INSERT INTO sessions"
    " (id, user_id, refresh_jti_hash, created_at, last_used_at, expires_at, user_agent, ip)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class SQLiteDatabase:
    """One aiosqlite connection with translated errors and a bound on each call."""

    def __init__(self, conn: aiosqlite.Connection, timeout_s: float) -> None:
        self._conn = conn
        self._timeout_s = timeout_s

    @classmethod
    async def open(cls, path: str, timeout_s: float) -> SQLiteDatabase:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        return cls(conn, timeout_s)

    async def fetchone(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Row | None:
        async with self._guard(), self._conn.execute(sql, tuple(args)) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        async with self._guard(), self._conn.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

    async def execute(self, sql: str, args: Iterable[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        async with self._guard(), self._conn.execute(sql, tuple(args)) as cur:
            return cur.rowcount

    async def close(self) -> None:
        await self._conn.close()

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
            raise StoreUnavailable(f"SQLite unavailable: {exc}") from exc


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
    """Expired rows are invisible to every call and pruned as new sessions arrive."""

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def create(self, session: Session) -> None:
        await self._db.execute("DELETE FROM sessions WHERE expires_at <= ?", (_now_ms(),))
        await self._db.execute(
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
            ),
        )

    async def get(self, user_id: str, session_id: str) -> Session | None:
        row = await self._db.fetchone(_SESSION_BY_ID, (session_id, user_id, _now_ms()))
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
        )

    async def touch(
        self, user_id: str, session_id: str, refresh_jti_hash: str, now: datetime
    ) -> bool:
        changed = await self._db.execute(
            "UPDATE sessions SET last_used_at = ?"
            " WHERE id = ? AND user_id = ? AND refresh_jti_hash = ? AND expires_at > ?",
            (_ms(now), session_id, user_id, refresh_jti_hash, _now_ms()),
        )
        return changed == 1

    async def delete(self, user_id: str, session_id: str) -> bool:
        changed = await self._db.execute(
            "DELETE FROM sessions WHERE id = ? AND user_id = ? AND expires_at > ?",
            (session_id, user_id, _now_ms()),
        )
        return changed == 1


async def migrate(db: SQLiteDatabase) -> list[Migration]:
    """Apply pending migrations; returns those applied."""
    await db.execute("BEGIN IMMEDIATE")  # one process migrates; others wait their turn
    try:
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at INTEGER NOT NULL)"
        )
        applied = {row[0] for row in await db.fetchall("SELECT version FROM schema_migrations")}
        todo = pending("sqlite", applied)
        for migration in todo:
            for statement in migration.statements:
                await db.execute(statement)
            await db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, _now_ms()),
            )
        await db.execute("COMMIT")
    except BaseException:
        await db.execute("ROLLBACK")
        raise
    return todo


def _now_ms() -> int:
    """Expiry is judged by wall time, as Redis judges its TTLs."""
    return int(time.time() * 1000)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
