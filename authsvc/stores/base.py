"""Store protocols, the records they hold and the errors adapters raise.

Error tree (adapters translate their library's errors into these, ``raise … from``)::

    StoreError
    ├── StoreUnavailable   the server cannot be reached or did not answer in time
    ├── UniqueViolation    a unique index refused a row (SQL adapters, internal)
    └── DuplicateEmail     a user with that (lower-cased) email exists already
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class StoreError(Exception):
    """Base of every error a store raises."""


class StoreUnavailable(StoreError):
    """The backing server is down, unreachable, too slow or refusing work now; the call
    may be retried. ``store`` ("redis", "database", "embedded") and ``cause`` (what the
    server said: "connection", "timeout", "out_of_memory", "read_only", …) name it for
    the metrics and the log, never for the client."""

    def __init__(self, message: str, *, store: str = "", cause: str = "connection") -> None:
        super().__init__(message)
        self.store = store
        self.cause = cause


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
    """A login. The refresh tokens themselves are never stored, only hashes of their jti:
    the current one and, after a rotation, its immediate parent (for the grace retry)."""

    id: str
    user_id: str
    refresh_jti_hash: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str = ""
    ip: str = ""
    parent_jti_hash: str = ""
    rotated_at: datetime | None = None


class RefreshUse(enum.Enum):
    """What presenting a refresh token to ``SessionStore.use_refresh`` came to."""

    CURRENT = "current"  # the session's current token: accepted (and rotated if asked)
    GRACE = "grace"  # the immediate parent, within the grace window: accepted as is
    REUSED = "reused"  # a spent token: the whole session has been revoked
    MISSING = "missing"  # no live session: never was, expired, idle too long, or revoked


@dataclass(frozen=True, slots=True)
class Counter:
    """A fixed-window counter: hits so far and when the window (and count) resets."""

    count: int
    resets_at: datetime


@dataclass(frozen=True, slots=True)
class UseLimit:
    """At most ``max`` uses of one session per fixed window of ``window_s`` seconds."""

    max: int
    window_s: float


class LimitReached(Exception):
    """A session was used more often than its UseLimit allows; nothing else changed."""

    def __init__(self, resets_at: datetime) -> None:
        super().__init__(f"limit reached until {resets_at.isoformat()}")
        self.resets_at = resets_at


class CounterStore(Protocol):
    """Counters with expiry, shared by every worker process (rate limits)."""

    async def increment(self, key: str, window_s: float) -> Counter:
        """Count one hit; the first hit of a window starts it, ``window_s`` long."""

    async def peek(self, key: str) -> Counter | None:
        """The live counter, or None if it has none or its window has passed."""

    async def decrement(self, key: str) -> None:
        """Uncount one hit of the live window (never below zero; the window's end stays
        where it is); nothing when the counter has none or its window has passed."""

    async def reset(self, key: str) -> None: ...


class UserStore(Protocol):
    async def get(self, user_id: str) -> User | None:
        """The user with that id, or None."""

    async def get_by_email(self, email: str) -> User | None:
        """The user with that email (already lower-cased by the caller), or None."""

    async def create(self, user: User) -> None:
        """Insert ``user``. Raises DuplicateEmail if the email is taken."""

    async def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> bool:
        """Replace the user's hash; False if there is no such user."""

    async def set_disabled(self, user_id: str, disabled: bool, now: datetime) -> bool:
        """Disable or enable the user; False if there is no such user."""

    async def list(self, limit: int, offset: int = 0) -> list[User]:
        """Users, oldest first."""

    async def delete(self, user_id: str) -> bool:
        """Delete the user; False if there is no such user."""


class SessionStore(Protocol):
    async def create(self, session: Session) -> None:
        """Store ``session`` until ``session.expires_at``."""

    async def get(self, user_id: str, session_id: str) -> Session | None:
        """The live session, or None if it never existed, expired or was deleted."""

    async def exists(self, user_id: str, session_id: str) -> bool:
        """Whether ``get`` would find the session: the check of every access token."""

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
        """Atomically judge a presented refresh token against its session.

        The current token is accepted; with ``rotate_to`` it becomes the parent and
        ``rotate_to`` the current one. The parent is accepted (and nothing changes) up to
        ``grace_s`` after the rotation. Any other token of the session is a reuse: the
        session is deleted. A session unused for over ``idle_timeout_s`` (0: no limit) is
        deleted and MISSING. Every accepted use sets last_used_at to ``now``.

        With ``limit``, every call is counted first, in the same step (the rate limit
        of refreshes per session, in one round trip): past ``limit.max`` in a window it
        raises LimitReached and judges nothing.
        """

    async def list_for_user(self, user_id: str) -> list[Session]:
        """The user's live sessions, oldest first."""

    async def delete(self, user_id: str, session_id: str) -> bool:
        """Delete the session; True only for the one caller that deleted it."""

    async def delete_all_for_user(self, user_id: str, keep: str | None = None) -> int:
        """Delete every session of the user but ``keep``; returns how many."""
