"""Store protocols, the records they hold and the errors adapters raise.

Error tree (adapters translate their library's errors into these, ``raise … from``)::

    StoreError
    ├── StoreUnavailable   the server cannot be reached or did not answer in time
    ├── UniqueViolation    a unique index refused a row (SQL adapters, internal)
    └── DuplicateEmail     a user with that (lower-cased) email exists already
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class StoreError(Exception):
    """Base of every error a store raises."""


class StoreUnavailable(StoreError):
    """The backing server is down, unreachable or too slow; the call may be retried."""


class UniqueViolation(StoreError):
    """A unique index refused a row; SQL wrappers raise it for their driver's error."""


class DuplicateEmail(StoreError):
    """``UserStore.create`` lost the race for an email (the unique index said no)."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    password_hash: str
    confirmed: bool
    disabled: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    """A login. The refresh token itself is never stored, only a hash of its jti."""

    id: str
    user_id: str
    refresh_jti_hash: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str = ""
    ip: str = ""


class UserStore(Protocol):
    async def get(self, user_id: str) -> User | None:
        """The user with that id, or None."""

    async def get_by_email(self, email: str) -> User | None:
        """The user with that email (already lower-cased by the caller), or None."""

    async def create(self, user: User) -> None:
        """Insert ``user``. Raises DuplicateEmail if the email is taken."""


class SessionStore(Protocol):
    async def create(self, session: Session) -> None:
        """Store ``session`` until ``session.expires_at``."""

    async def get(self, user_id: str, session_id: str) -> Session | None:
        """The live session, or None if it never existed, expired or was deleted."""

    async def touch(
        self, user_id: str, session_id: str, refresh_jti_hash: str, now: datetime
    ) -> bool:
        """Atomically: if the session lives and holds that jti hash, set last_used_at.

        Returns whether it did; False means the refresh token is no longer valid.
        """

    async def delete(self, user_id: str, session_id: str) -> bool:
        """Delete the session; True only for the one caller that deleted it."""
