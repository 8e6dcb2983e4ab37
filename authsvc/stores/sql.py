"""The users table as the SQL adapters (MySQL/MariaDB, SQLite) share it.

The table, its queries and the row mapping are the same; a subclass names its driver's
parameter marker and how its columns hold a moment in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

from authsvc.stores.base import DuplicateEmail, UniqueViolation, User

_COLUMNS = "id, email, password_hash, confirmed, disabled, created_at, updated_at"


class SQLDatabase(Protocol):
    """What the users table needs of a connection wrapper. Both methods raise
    StoreUnavailable; ``execute`` raises UniqueViolation for a unique index."""

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> Sequence[Any] | None: ...

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> Sequence[Sequence[Any]]: ...

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it matched."""


class SQLUserStore:
    placeholder: ClassVar[str]

    def __init__(self, db: SQLDatabase) -> None:
        self._db = db
        marks = ", ".join([self.placeholder] * 7)
        self._by_id = f"SELECT {_COLUMNS} FROM users WHERE id = {self.placeholder}"  # noqa: S608
        self._by_email = f"SELECT {_COLUMNS} FROM users WHERE email = {self.placeholder}"  # noqa: S608
        self._insert = f"INSERT INTO users ({_COLUMNS}) VALUES ({marks})"  # noqa: S608
        self._page = (
            f"SELECT {_COLUMNS} FROM users ORDER BY created_at, id"  # noqa: S608
            f" LIMIT {self.placeholder} OFFSET {self.placeholder}"
        )
        self._delete = f"DELETE FROM users WHERE id = {self.placeholder}"  # noqa: S608
        mark = self.placeholder  # only the driver's marker is formatted in, never a value
        self._set_hash = (
            f"UPDATE users SET password_hash = {mark}, updated_at = {mark} WHERE id = {mark}"  # noqa: S608
        )
        self._replace_hash = self._set_hash + f" AND password_hash = {mark}"
        self._set_disabled = (
            f"UPDATE users SET disabled = {mark}, updated_at = {mark} WHERE id = {mark}"  # noqa: S608
        )
        self._set_confirmed = (
            f"UPDATE users SET confirmed = TRUE, updated_at = {mark} WHERE id = {mark}"  # noqa: S608
        )
        self._set_email = f"UPDATE users SET email = {mark}, updated_at = {mark} WHERE id = {mark}"  # noqa: S608

    def within(self, tx: SQLDatabase) -> SQLUserStore:
        """The same table, read and written in the transaction ``tx``."""
        return type(self)(tx)

    @staticmethod
    def encode_time(moment: datetime) -> Any:
        raise NotImplementedError

    @staticmethod
    def decode_time(value: Any) -> datetime:
        raise NotImplementedError

    async def get(self, user_id: str) -> User | None:
        return self._user(await self._db.fetchone(self._by_id, (user_id,)))

    async def get_by_email(self, email: str) -> User | None:
        return self._user(await self._db.fetchone(self._by_email, (email,)))

    async def create(self, user: User) -> None:
        values = (
            user.id,
            user.email,
            user.password_hash,
            user.confirmed,
            user.disabled,
            self.encode_time(user.created_at),
            self.encode_time(user.updated_at),
        )
        try:
            await self._db.execute(self._insert, values)
        except UniqueViolation as exc:
            # An insert retried after its connection dropped may find the row its first
            # try committed: that is success, not a duplicate.
            existing = await self.get_by_email(user.email)
            if existing is not None and existing.id == user.id:
                return
            raise DuplicateEmail(user.email) from exc

    async def set_password_hash(
        self, user_id: str, password_hash: str, now: datetime, replacing: str | None = None
    ) -> bool:
        values = (password_hash, self.encode_time(now), user_id)
        if replacing is None:
            changed = await self._db.execute(self._set_hash, values)
        else:
            changed = await self._db.execute(self._replace_hash, (*values, replacing))
        return bool(changed)

    async def set_disabled(self, user_id: str, disabled: bool, now: datetime) -> bool:
        changed = await self._db.execute(
            self._set_disabled, (disabled, self.encode_time(now), user_id)
        )
        return bool(changed)

    async def set_confirmed(self, user_id: str, now: datetime) -> bool:
        return bool(await self._db.execute(self._set_confirmed, (self.encode_time(now), user_id)))

    async def set_email(self, user_id: str, email: str, now: datetime) -> bool:
        """Raises DuplicateEmail when another account has ``email``."""
        try:
            changed = await self._db.execute(
                self._set_email, (email, self.encode_time(now), user_id)
            )
        except UniqueViolation as exc:
            raise DuplicateEmail(email) from exc
        return bool(changed)

    async def list(self, limit: int, offset: int = 0) -> list[User]:
        rows = await self._db.fetchall(self._page, (limit, offset))
        return [user for row in rows if (user := self._user(row)) is not None]

    async def delete(self, user_id: str) -> bool:
        return bool(await self._db.execute(self._delete, (user_id,)))

    def _user(self, row: Sequence[Any] | None) -> User | None:
        if row is None:
            return None
        return User(
            id=row[0],
            email=row[1],
            password_hash=row[2],
            confirmed=bool(row[3]),
            disabled=bool(row[4]),
            created_at=self.decode_time(row[5]),
            updated_at=self.decode_time(row[6]),
        )
