"""Users in MariaDB/MySQL through an aiomysql connection pool."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import aiomysql
import pymysql
import pymysql.constants.CLIENT

from authsvc.stores.base import StoreUnavailable, UniqueViolation
from authsvc.stores.migrations import Applied, EmailRule, MigrationsPending, apply, pending
from authsvc.stores.sql import SQLUserStore

log = logging.getLogger(__name__)

ER_DUP_ENTRY = 1062
#: Errors of a connection that was fine when pooled but whose server went away since
#: (restart, failover, idle timeout): worth one retry on a fresh connection.
STALE_CONNECTION_ERRORS = {2006, 2013, 2055}
MIGRATION_LOCK = "authsvc_migrate"

_UNAVAILABLE = (
    TimeoutError,
    OSError,
    pymysql.err.OperationalError,
    pymysql.err.InterfaceError,
)

#: Server answers that mean "not now" rather than "wrong", by the cause they are
#: counted under. pymysql raises some as OperationalError, others as InternalError.
BUSY_SERVER_ERRORS = {
    1040: "too_many_connections",  # ER_CON_COUNT_ERROR
    1205: "lock_wait_timeout",  # ER_LOCK_WAIT_TIMEOUT
    1213: "deadlock",  # ER_LOCK_DEADLOCK: the statement was rolled back
    1290: "read_only",  # ER_OPTION_PREVENTS_STATEMENT: --read-only (a replica)
    1836: "read_only",  # ER_READ_ONLY_MODE
}


def _unavailable(exc: BaseException) -> StoreUnavailable | None:
    """StoreUnavailable for an error that means the database cannot serve now."""
    code = exc.args[0] if isinstance(exc, pymysql.err.MySQLError) and exc.args else None
    if code in BUSY_SERVER_ERRORS:
        cause = BUSY_SERVER_ERRORS[code]
    elif isinstance(exc, TimeoutError):
        cause = "timeout"
    elif isinstance(exc, _UNAVAILABLE):
        cause = "connection"
    else:
        return None
    return StoreUnavailable(
        f"MySQL/MariaDB unavailable ({cause}): {_reason(exc)}", store="database", cause=cause
    )


#: The longest part of a driver's message that a StoreUnavailable quotes.
MAX_REASON_CHARS = 200


def _reason(exc: BaseException) -> str:
    """What went wrong, for the log and /readyz: the driver's message (a server's
    answer or a resolver's: no credentials), or the error's name when it has none."""
    detail = str(exc.args[-1]) if exc.args else ""
    return f"{type(exc).__name__}: {detail[:MAX_REASON_CHARS]}" if detail else type(exc).__name__


@dataclass(frozen=True, slots=True)
class MySQLConfig:
    host: str
    port: int
    user: str
    password: str
    database: str
    pool_min: int
    pool_max: int
    connect_timeout_s: float
    timeout_s: float
    tls: ssl.SSLContext | None = None


class MySQLPool:
    """An aiomysql pool whose calls answer within ``timeout_s`` or raise StoreUnavailable."""

    def __init__(self, pool: aiomysql.Pool, timeout_s: float, tls: bool = False) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._tls = tls
        self._first_use: Callable[[], Awaitable[None]] | None = None
        self._abandoned: set[asyncio.Future[Any]] = set()
        self._first_use_lock = asyncio.Lock()

    @classmethod
    async def open(cls, config: MySQLConfig, *, connect: bool = True) -> MySQLPool:
        """Open the pool. Raises StoreUnavailable if the server cannot be reached.
        ``connect=False``: open no connection now (the server is known to be down):
        the pool connects on its first call and keeps no idle minimum until then."""
        try:
            # Bounded as a whole: a server that accepts the connection and then says
            # nothing (frozen, partitioned) would otherwise hold the handshake forever,
            # and a worker starting then would never serve.
            async with asyncio.timeout(config.connect_timeout_s + config.timeout_s):
                pool = await aiomysql.create_pool(
                    host=config.host,
                    port=config.port,
                    user=config.user,
                    password=config.password,
                    db=config.database,
                    minsize=config.pool_min if connect else 0,
                    maxsize=config.pool_max,
                    connect_timeout=config.connect_timeout_s,
                    autocommit=True,
                    # UPDATE reports the rows it matched, not only those it changed.
                    client_flag=pymysql.constants.CLIENT.FOUND_ROWS,
                    charset="utf8mb4",
                    pool_recycle=3600,
                    ssl=config.tls,
                )
        except _UNAVAILABLE as exc:
            known = _unavailable(exc)  # the server's refusal (too many connections, …)
            raise StoreUnavailable(
                f"cannot reach MySQL/MariaDB at {config.host}:{config.port}: {_reason(exc)}",
                store="database",
                cause=known.cause if known else "connection",
            ) from exc
        return cls(pool, config.timeout_s, tls=config.tls is not None)

    def check_before_first_use(self, check: Callable[[], Awaitable[None]]) -> None:
        """Run ``check`` (the schema check or the development migrations) before the
        first statement: a pool opened while the server was down could not run it at
        start. Until it has passed, each call runs it first (one at a time); while it
        fails, the calls fail with it, as SERVICE_UNAVAILABLE (a database that is
        behind this release cannot serve it: MigrationsPending says what to run)."""
        self._first_use = check

    async def _checked(self) -> None:
        if self._first_use is None:
            return
        async with self._first_use_lock:
            check = self._first_use
            if check is None:  # another call passed it while this one waited
                return
            try:
                await check()
            except MigrationsPending as exc:
                raise StoreUnavailable(str(exc), store="database", cause="schema") from exc
            self._first_use = None
            log.info("database reachable: schema checked, serving")

    def _forget(self, call: asyncio.Future[Any]) -> None:
        """An abandoned call has ended: let it go, and retrieve its outcome, so that
        asyncio does not log it as never retrieved (its caller has answered)."""
        self._abandoned.discard(call)
        if not call.cancelled():
            call.exception()

    def usage(self) -> tuple[int, int]:
        """(connections open, of which idle)."""
        return int(self._pool.size), int(self._pool.freesize)

    async def ping(self) -> None:
        """Raises StoreUnavailable unless the server answers."""
        await self.fetchone("SELECT 1")

    async def close(self) -> None:
        """Close every connection. Those still in use (a call abandoned at its
        deadline, a frozen server) get ``timeout_s`` to come back, then are cut:
        closing must not wait for a server that does not answer."""
        self._pool.close()
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._pool.wait_closed()
        except TimeoutError:
            self._pool.terminate()
        if self._tls:
            # aiomysql closes a TLS transport without waiting for its shutdown, which
            # takes a turn of the loop: give it one, or the socket outlives the loop.
            await asyncio.sleep(0.05)

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = await self._run(sql, args, fetch="one")
        return row

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = list(await self._run(sql, args, fetch="all"))
        return rows

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it matched."""
        with _unique_violations():
            rows: int = await self._run(sql, args, fetch=None)
            return rows

    async def _run(
        self, sql: str, args: Sequence[Any], *, fetch: Literal["one", "all"] | None
    ) -> Any:
        """Run one statement; it answers within ``timeout_s``, whatever the server does.

        The statement runs in a task of its own, which the caller stops waiting for at
        the deadline. Cancelling it is not enough: aiomysql's pool takes its lock again
        inside ``Condition.wait`` even when cancelled, behind connection attempts that
        hold it until their own deadline, so a cancelled call could still take twice
        the timeout, or longer. The abandoned task is cancelled and ends by itself (its
        connection is closed, not pooled again)."""
        call = asyncio.ensure_future(self._attempts(sql, args, fetch))
        try:
            done, _ = await asyncio.wait({call}, timeout=self._timeout_s)
        except asyncio.CancelledError:  # the request itself was cancelled
            call.cancel()
            raise
        if not done:
            call.cancel()
            # Held until it ends: asyncio keeps only weak references to tasks, and one
            # collected while still pending (waiting on a frozen server) is torn down
            # in the middle of its connection's context.
            self._abandoned.add(call)
            call.add_done_callback(self._forget)
            raise StoreUnavailable(
                f"MySQL/MariaDB unavailable (timeout): no answer within {self._timeout_s:g} s",
                store="database",
                cause="timeout",
            )
        return call.result()

    async def _attempts(
        self, sql: str, args: Sequence[Any], fetch: Literal["one", "all"] | None
    ) -> Any:
        """The statement, retried once on a fresh connection when a pooled one turns
        out stale; returns its row(s), or the rows matched when ``fetch`` is None."""
        await self._checked()
        for attempt in (1, 2):
            try:
                async with self.connection() as conn, conn.cursor() as cur:
                    matched = await cur.execute(sql, args)
                    if fetch == "one":
                        return await cur.fetchone()
                    return await cur.fetchall() if fetch == "all" else matched
            except StoreUnavailable as exc:
                cause = exc.__cause__
                code = cause.args[0] if isinstance(cause, pymysql.err.MySQLError) else None
                if attempt == 2 or code not in STALE_CONNECTION_ERRORS:
                    raise
                # The server came back (or failed over): every idle connection is dead.
                await self._pool.clear()
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[aiomysql.Connection]:
        """A pooled connection, closed rather than pooled again after any failure (it may
        be mid-protocol), with library errors translated."""
        try:
            async with asyncio.timeout(self._timeout_s), self._pool.acquire() as conn:
                try:
                    yield conn
                except pymysql.err.IntegrityError:
                    raise
                except BaseException:
                    conn.close()
                    raise
        except (*_UNAVAILABLE, pymysql.err.InternalError) as exc:
            unavailable = _unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MySQLTransaction]:
        """BEGIN … COMMIT on one pooled connection (stores/outbox.py TransactionalDatabase).
        When the block raises, the connection is closed rather than pooled again (see
        ``connection()``), and the server rolls the transaction back; an IntegrityError,
        which keeps the connection, is rolled back here. Not retried on a stale
        connection: the block's statements may have had effects the caller relies on.
        Callbacks of ``after_commit`` run once COMMIT has returned."""
        try:  # the schema, if the pool opened without its server
            async with asyncio.timeout(self._timeout_s):
                await self._checked()
        except TimeoutError as exc:
            raise _unavailable(exc) from exc  # type: ignore[misc]
        async with self.connection() as conn, conn.cursor() as cur:
            await conn.begin()
            tx = MySQLTransaction(cur)
            try:
                yield tx
            except (pymysql.err.IntegrityError, UniqueViolation):
                await conn.rollback()
                raise
            await conn.commit()
        for callback in tx.committed:
            callback()


class MySQLTransaction:
    """The statements of one cursor: an open transaction's (stores/outbox.py UnitOfWork),
    or the migration lock's connection (its data steps)."""

    def __init__(self, cur: aiomysql.Cursor) -> None:
        self._cur = cur
        self.committed: list[Callable[[], None]] = []

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        await self._cur.execute(sql, tuple(args) or None)
        row: tuple[Any, ...] | None = await self._cur.fetchone()
        return row

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        await self._cur.execute(sql, tuple(args) or None)
        return list(await self._cur.fetchall())

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        with _unique_violations():
            # None, not (): with arguments the driver %-formats the statement.
            matched: int = await self._cur.execute(sql, tuple(args) or None)
            return matched

    def after_commit(self, callback: Callable[[], None]) -> None:
        self.committed.append(callback)


@contextmanager
def _unique_violations() -> Iterator[None]:
    try:
        yield
    except pymysql.err.IntegrityError as exc:
        if exc.args[0] == ER_DUP_ENTRY:
            raise UniqueViolation(str(exc.args[1])) from exc
        raise


class MySQLUserStore(SQLUserStore):
    placeholder = "%s"

    @staticmethod
    def encode_time(moment: datetime) -> datetime:
        """DATETIME columns hold UTC without a zone."""
        return moment.astimezone(UTC).replace(tzinfo=None)

    @staticmethod
    def decode_time(value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


async def migrate(db: MySQLPool, *, email_rule: EmailRule) -> list[Applied]:
    """Apply pending migrations; returns those applied. Safe to run from several
    processes at once: a named lock lets one of them do it. ``email_rule`` is the
    core's normalize_email, for the data step that applies it."""
    async with db.connection() as conn, conn.cursor() as cur:
        await cur.execute("SELECT GET_LOCK(%s, 60)", (MIGRATION_LOCK,))
        try:
            if not await _has_migrations_table(cur):
                await cur.execute(
                    "CREATE TABLE schema_migrations ("
                    " version INT NOT NULL PRIMARY KEY,"
                    " name VARCHAR(255) NOT NULL,"
                    " applied_at DATETIME(3) NOT NULL)"
                )
            await cur.execute("SELECT version FROM schema_migrations")
            applied = {row[0] for row in await cur.fetchall()}
            done = []
            for migration in pending("mysql", applied):
                done.append(await apply(MySQLTransaction(cur), migration, "%s", email_rule))
                await cur.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at)"
                    " VALUES (%s, %s, UTC_TIMESTAMP(3))",
                    (migration.version, migration.name),
                )
            return done
        finally:
            await cur.execute("SELECT RELEASE_LOCK(%s)", (MIGRATION_LOCK,))


async def schema_version(db: MySQLPool) -> int:
    """The newest applied migration, 0 for a database never migrated."""
    async with db.connection() as conn, conn.cursor() as cur:
        if not await _has_migrations_table(cur):
            return 0
        await cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        row = await cur.fetchone()
        return int(row[0])


async def _has_migrations_table(cur: aiomysql.Cursor) -> bool:
    # Asked of information_schema: CREATE TABLE IF NOT EXISTS would raise a note that
    # aiomysql turns into a Python warning.
    await cur.execute(
        "SELECT COUNT(*) FROM information_schema.tables"
        " WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
    )
    row = await cur.fetchone()
    return bool(row[0])
