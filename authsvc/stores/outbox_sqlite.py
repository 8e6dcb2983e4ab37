"""The outbox in the embedded SQLite file: a claim is one UPDATE … RETURNING under
BEGIN IMMEDIATE, which holds off every other process on the file meanwhile."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from authsvc.stores.outbox import ClaimedMessage
from authsvc.stores.outbox_sql import SQLOutboxStore

#: SQLite's own clock in epoch milliseconds (the time columns' unit).
_NOW = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

_CLAIM = (
    "UPDATE outbox SET state = 'sending', attempts = attempts + 1,"  # noqa: S608
    f" claim_fence = claim_fence + 1, next_attempt_at = {_NOW} + ?"
    " WHERE id IN (SELECT id FROM outbox WHERE channel = ? AND state IN ('queued', 'sending')"
    f" AND next_attempt_at <= {_NOW}{{skip}} ORDER BY next_attempt_at, id LIMIT ?)"
    " RETURNING id, kind, recipient, message, attempts, claim_fence"
)


class SQLiteOutboxStore(SQLOutboxStore):
    placeholder = "?"
    now_sql = _NOW

    @classmethod
    def later_sql(cls, mark: str) -> str:
        return f"{_NOW} + {mark}"

    @staticmethod
    def delay_arg(seconds: float) -> int:
        return int(seconds * 1000)

    @classmethod
    def age_sql(cls, column: str) -> str:
        return f"({_NOW} - {column}) / 1000.0"

    @staticmethod
    def decode_time(value: Any) -> datetime:
        assert isinstance(value, int)
        return datetime.fromtimestamp(value / 1000, UTC)

    async def claim(
        self, channel: str, limit: int, lease_s: float, skip: Sequence[str] = ()
    ) -> list[ClaimedMessage]:
        claim = _CLAIM.format(skip=self.skipping(skip))  # markers only, never a value
        async with self._db.transaction() as tx:
            rows = await tx.fetchall(claim, (self.delay_arg(lease_s), channel, *skip, limit))
        return [
            ClaimedMessage(row[0], row[1], row[2], str(row[3]).encode(), int(row[4]), int(row[5]))
            for row in rows
        ]
