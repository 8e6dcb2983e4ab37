"""The outbox in MySQL/MariaDB: claims with SELECT … FOR UPDATE SKIP LOCKED, so that
workers of every process and host take disjoint batches without waiting on each other."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from authsvc.stores.outbox import ClaimedMessage
from authsvc.stores.outbox_sql import SQLOutboxStore

_DUE = (
    "SELECT id, kind, recipient, message, attempts, claim_fence FROM outbox"
    " WHERE channel = %s AND state IN ('queued', 'sending')"
    " AND next_attempt_at <= UTC_TIMESTAMP(3){skip}"
    " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED"
)


class MySQLOutboxStore(SQLOutboxStore):
    placeholder = "%s"
    now_sql = "UTC_TIMESTAMP(3)"

    @classmethod
    def later_sql(cls, mark: str) -> str:
        return f"UTC_TIMESTAMP(3) + INTERVAL {mark} MICROSECOND"

    @staticmethod
    def delay_arg(seconds: float) -> int:
        return int(seconds * 1_000_000)

    @classmethod
    def age_sql(cls, column: str) -> str:
        return f"TIMESTAMPDIFF(MICROSECOND, {column}, UTC_TIMESTAMP(3)) / 1000000"

    @staticmethod
    def decode_time(value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)

    async def claim(
        self, channel: str, limit: int, lease_s: float, skip: Sequence[str] = ()
    ) -> list[ClaimedMessage]:
        due = _DUE.format(skip=self.skipping(skip))  # markers only, never a value
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(due, (channel, *skip, limit))
            if not rows:
                return []
            ids = [row[0] for row in rows]
            await tx.execute(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1,"  # noqa: S608
                " claim_fence = claim_fence + 1,"
                " next_attempt_at = UTC_TIMESTAMP(3) + INTERVAL %s MICROSECOND"
                f" WHERE id IN ({', '.join(['%s'] * len(ids))})",
                (self.delay_arg(lease_s), *ids),
            )
        # The rows were locked from the SELECT to the COMMIT: the UPDATE made exactly
        # these counts and fences.
        return [
            ClaimedMessage(row[0], row[1], row[2], str(row[3]).encode(), int(row[4]) + 1,
                           int(row[5]) + 1)
            for row in rows
        ]  # fmt: skip
