"""The single-use tokens of the account flows, in the users database (both SQL stores
share the table and its queries; the dialect's parameter marker and time columns come
from its user store).

A token is used inside the transaction of the change it authorizes: ``take`` locks and
deletes its row there, so two requests racing with one token cannot both see it, and a
change that fails (the new email taken, say) rolls the spending back with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from authsvc.stores.sql import SQLDatabase, SQLUserStore

Purpose = Literal["confirm_email", "reset_password", "change_email"]


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256, hex. A token has 256 random bits, so a
    fast hash is enough (nothing to guess from it) and lookups stay an index read."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class AccountToken:
    token_hash: str
    purpose: Purpose
    user_id: str
    #: The address the token was sent to (an email change: the new address).
    email: str
    created_at: datetime
    expires_at: datetime


class SQLAccountTokens:
    """The account_tokens table, on ``db``: the pool (one statement each) or an open
    transaction (``within``)."""

    def __init__(self, db: SQLDatabase, dialect: type[SQLUserStore], *, lock: str = "") -> None:
        """``lock``: what a locking read ends with (" FOR UPDATE" on MySQL; SQLite's
        transactions hold the file's write lock already)."""
        self._db = db
        self._dialect = dialect
        self._lock = lock
        mark = dialect.placeholder
        self._columns = "token_hash, purpose, user_id, email, created_at, expires_at"
        self._insert = (
            f"INSERT INTO account_tokens ({self._columns})"  # noqa: S608 - markers only
            f" VALUES ({', '.join([mark] * 6)})"
        )
        self._find = (
            f"SELECT {self._columns} FROM account_tokens"  # noqa: S608
            f" WHERE token_hash = {mark} AND purpose = {mark}"
        )
        self._delete = f"DELETE FROM account_tokens WHERE token_hash = {mark}"  # noqa: S608
        self._mark = mark

    def within(self, tx: SQLDatabase) -> SQLAccountTokens:
        """The same table, read and written in the transaction ``tx``."""
        return SQLAccountTokens(tx, self._dialect, lock=self._lock)

    async def add(self, token: AccountToken) -> None:
        encode = self._dialect.encode_time
        await self._db.execute(
            self._insert,
            (token.token_hash, token.purpose, token.user_id, token.email,
             encode(token.created_at), encode(token.expires_at)),
        )  # fmt: skip

    async def find(self, hashed: str, purpose: Purpose) -> AccountToken | None:
        """The token, without spending it (a cheap check before costly work)."""
        return self._token(await self._db.fetchone(self._find, (hashed, purpose)))

    async def take(self, hashed: str, purpose: Purpose) -> AccountToken | None:
        """Spend the token: None unless this call deleted its row. In a transaction: the
        row is locked first, so a concurrent ``take`` waits and then finds nothing."""
        token = self._token(await self._db.fetchone(self._find + self._lock, (hashed, purpose)))
        if token is None or not await self._db.execute(self._delete, (hashed,)):
            return None
        return token

    async def delete_for(self, user_id: str, purposes: Sequence[Purpose]) -> int:
        """Every token of ``user_id`` for ``purposes``; how many there were."""
        marks = ", ".join([self._mark] * len(purposes))
        return await self._db.execute(
            f"DELETE FROM account_tokens WHERE user_id = {self._mark}"  # noqa: S608
            f" AND purpose IN ({marks})",
            (user_id, *purposes),
        )

    async def delete_expired(self, now: datetime, limit: int = 1000) -> int:
        """Up to ``limit`` tokens past their end (a bounded statement: it runs beside
        requests)."""
        return await self._db.execute(
            f"DELETE FROM account_tokens WHERE token_hash IN (SELECT token_hash FROM"  # noqa: S608
            f" (SELECT token_hash FROM account_tokens WHERE expires_at < {self._mark}"
            f" LIMIT {self._mark}) AS expired)",
            (self._dialect.encode_time(now), limit),
        )

    def _token(self, row: Sequence[Any] | None) -> AccountToken | None:
        if row is None:
            return None
        decode = self._dialect.decode_time
        return AccountToken(row[0], row[1], row[2], row[3], decode(row[4]), decode(row[5]))
