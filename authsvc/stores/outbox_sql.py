"""The outbox table as the SQL adapters share it; each names its parameter marker, the
database clock's SQL, and how it claims (stores/outbox_mysql.py, outbox_sqlite.py).

Every time the outbox writes is the database's own (``now_sql``): a lease taken on one
host and judged on another means the same moment on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar

from authsvc.stores.outbox import (
    ClaimedMessage,
    OutboxDatabase,
    OutboxEntry,
    OutboxStats,
    OutgoingMessage,
    State,
    UnitOfWork,
    error_text,
)

_ENTRY_COLUMNS = (
    "id, channel, kind, recipient, state, attempts, next_attempt_at, last_error,"
    " created_at, sent_at"
)
_WAITING = "state IN ('queued', 'sending')"


class SQLOutboxStore:
    #: The driver's parameter marker.
    placeholder: ClassVar[str]
    #: The database clock, as an SQL expression of the type the time columns hold.
    now_sql: ClassVar[str]

    def __init__(self, db: OutboxDatabase) -> None:
        self._db = db
        m = self.placeholder  # only the driver's marker is formatted in, never a value
        now, later = self.now_sql, self.later_sql(m)
        self._insert = (
            "INSERT INTO outbox (id, channel, kind, recipient, message, state, attempts,"  # noqa: S608
            f" claim_fence, next_attempt_at, created_at) VALUES ({m}, {m}, {m}, {m}, {m},"
            f" 'queued', 0, 0, {now}, {now})"
        )
        fenced = f" WHERE id = {m} AND claim_fence = {m} AND state = 'sending'"
        self._sent = (
            "UPDATE outbox SET state = 'sent', message = NULL, last_error = NULL,"  # noqa: S608
            f" sent_at = {now}" + fenced
        )
        self._retry = (
            f"UPDATE outbox SET state = 'queued', next_attempt_at = {later},"  # noqa: S608
            f" last_error = {m}" + fenced
        )
        self._release = (
            "UPDATE outbox SET state = 'queued', attempts = attempts - 1,"  # noqa: S608
            f" next_attempt_at = {later}, last_error = {m}" + fenced
        )
        self._dead = f"UPDATE outbox SET state = 'dead', last_error = {m}" + fenced  # noqa: S608
        requeue = (
            "UPDATE outbox SET state = 'queued', attempts = 0, last_error = NULL,"  # noqa: S608
            f" next_attempt_at = {now} WHERE"
        )
        self._requeue_one = requeue + f" state IN ('dead', 'queued') AND id = {m}"
        self._requeue_dead = requeue + " state = 'dead'"
        self._list = f"SELECT {_ENTRY_COLUMNS} FROM outbox"  # noqa: S608
        self._stats = (
            f"SELECT COUNT(*), {self.age_sql('MIN(created_at)')} FROM outbox"  # noqa: S608
            f" WHERE channel = {m} AND {_WAITING}"
        )
        # Bounded (a statement beside the requests); the derived table lets MariaDB
        # take LIMIT in a subquery of the table it deletes from.
        self._purge_sent = (
            "DELETE FROM outbox WHERE id IN (SELECT id FROM (SELECT id FROM outbox"  # noqa: S608
            f" WHERE channel = {m} AND state = 'sent' AND {self.age_sql('sent_at')} > {m}"
            f" LIMIT {m}) AS old)"
        )

    # --- what a dialect says ----------------------------------------------------------

    @classmethod
    def later_sql(cls, mark: str) -> str:
        """The database clock plus a delay given as ``delay_arg``."""
        raise NotImplementedError

    @staticmethod
    def delay_arg(seconds: float) -> int:
        raise NotImplementedError

    @classmethod
    def age_sql(cls, column: str) -> str:
        """Seconds from ``column`` to the database clock."""
        raise NotImplementedError

    @staticmethod
    def decode_time(value: Any) -> datetime:
        raise NotImplementedError

    async def claim(
        self, channel: str, limit: int, lease_s: float, skip: Sequence[str] = ()
    ) -> list[ClaimedMessage]:
        raise NotImplementedError

    @classmethod
    def skipping(cls, skip: Sequence[str]) -> str:
        """The condition that leaves out the recipients of ``skip`` (their markers)."""
        if not skip:
            return ""
        return f" AND recipient NOT IN ({', '.join([cls.placeholder] * len(skip))})"

    # --- shared --------------------------------------------------------------------------

    async def enqueue(self, tx: UnitOfWork, message: OutgoingMessage) -> None:
        await tx.execute(
            self._insert,
            (
                message.id,
                message.channel,
                message.kind,
                message.recipient,
                # Text, not bytes: aiomysql cannot pass bytes with the PyMySQL of today.
                # A composed mail is ASCII (the SMTP policy encodes what is not).
                message.message.decode("utf-8"),
            ),
        )

    async def mark_sent(self, claim: ClaimedMessage) -> bool:
        return await self._finish(self._sent, (claim.id, claim.fence))

    async def retry_later(self, claim: ClaimedMessage, delay_s: float, error: str) -> bool:
        args = (self.delay_arg(delay_s), error_text(error), claim.id, claim.fence)
        return await self._finish(self._retry, args)

    async def release(self, claim: ClaimedMessage, delay_s: float, error: str) -> bool:
        args = (self.delay_arg(delay_s), error_text(error), claim.id, claim.fence)
        return await self._finish(self._release, args)

    async def mark_dead(self, claim: ClaimedMessage, error: str) -> bool:
        return await self._finish(self._dead, (error_text(error), claim.id, claim.fence))

    async def list(self, limit: int, state: State | None = None) -> list[OutboxEntry]:
        m = self.placeholder
        where, args = (f" WHERE state = {m}", [state]) if state else ("", [])
        rows = await self._fetchall(
            f"{self._list}{where} ORDER BY created_at DESC, id LIMIT {m}", (*args, limit)
        )
        return [self._entry(row) for row in rows]

    async def requeue(self, message_id: str) -> bool:
        return bool(await self._execute(self._requeue_one, (message_id,)))

    async def requeue_dead(self) -> int:
        return await self._execute(self._requeue_dead)

    async def purge_dead(self) -> int:
        return await self._execute("DELETE FROM outbox WHERE state = 'dead'")

    async def purge_sent(self, channel: str, older_than_s: float, limit: int) -> int:
        return await self._execute(self._purge_sent, (channel, older_than_s, limit))

    async def stats(self, channel: str) -> OutboxStats:
        rows = await self._fetchall(self._stats, (channel,))
        count, age = rows[0] if rows else (0, None)
        return OutboxStats(int(count or 0), max(0.0, float(age)) if age is not None else 0.0)

    async def _finish(self, sql: str, args: Sequence[Any]) -> bool:
        return await self._execute(sql, args) == 1

    async def _execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        return await self._db.execute(sql, args)

    async def _fetchall(self, sql: str, args: Sequence[Any] = ()) -> Sequence[Sequence[Any]]:
        return await self._db.fetchall(sql, args)

    def _entry(self, row: Sequence[Any]) -> OutboxEntry:
        return OutboxEntry(
            id=row[0],
            channel=row[1],
            kind=row[2],
            recipient=row[3],
            state=row[4],
            attempts=int(row[5]),
            next_attempt_at=self.decode_time(row[6]),
            last_error=row[7],
            created_at=self.decode_time(row[8]),
            sent_at=self.decode_time(row[9]) if row[9] is not None else None,
        )
