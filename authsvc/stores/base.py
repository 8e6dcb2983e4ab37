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
    #: The user's revocation epoch when the session was made (SessionStore.epoch): once
    #: the user's epoch moves on, the session is revoked, whatever else it holds.
    epoch: int = 0


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

    async def set_password_hash(
        self, user_id: str, password_hash: str, now: datetime, replacing: str | None = None
    ) -> bool:
        """Replace the user's hash; False if there is no such user. With ``replacing``,
        only if the stored hash is still that one (False otherwise): a rehash at login
        must not undo a password change that landed while it was hashing."""

    async def set_disabled(self, user_id: str, disabled: bool, now: datetime) -> bool:
        """Disable or enable the user; False if there is no such user."""

    async def set_confirmed(self, user_id: str, now: datetime) -> bool:
        """Mark the user's email confirmed; False if there is no such user."""

    async def list(self, limit: int, offset: int = 0) -> list[User]:
        """Users, oldest first."""

    async def delete(self, user_id: str) -> bool:
        """Delete the user; False if there is no such user."""


#: A bumped revocation epoch is kept at least this long, however short the user's
#: sessions: longer than any login in flight takes between reading it and creating
#: its session (past that, an epoch lives as long as the user's longest session).
EPOCH_MIN_TTL_S = 24 * 3600


class SessionStore(Protocol):
    """Sessions, and each user's revocation epoch (DESIGN §6: revocation wins races).

    The epoch is a counter per user, 0 until the first revocation. ``revoke_all`` bumps
    it; a session made under an older epoch is revoked at that instant: every call
    below treats it as absent, in the same atomic step as the rest of the call (no
    extra round trip). A login reads the epoch before it reads the user and creates
    its session only if the epoch has not moved meanwhile, so a revocation that
    lands while the password is being hashed wins. A user's epoch is kept as long as
    any of their sessions can live (and at least EPOCH_MIN_TTL_S after a bump).
    """

    async def epoch(self, user_id: str) -> int:
        """The user's current revocation epoch (0 if never revoked)."""

    async def create(self, session: Session) -> bool:
        """Store ``session`` until ``session.expires_at`` if ``session.epoch`` is still
        its user's current epoch, atomically with that check. False, and nothing
        stored, when a revocation came in between."""

    async def get(self, user_id: str, session_id: str) -> Session | None:
        """The live session, or None if it never existed, expired, was deleted or was
        revoked (made under an epoch that is no longer the user's)."""

    async def exists(self, user_id: str, session_id: str) -> bool:
        """Whether ``get`` would find the session, in one round trip: the check of
        every access token."""

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
        """The user's live (unrevoked) sessions, oldest first."""

    async def delete(self, user_id: str, session_id: str) -> bool:
        """Delete the session; True only for the one caller that deleted it."""

    async def revoke_all(self, user_id: str, keep: str | None = None) -> int:
        """End every session of the user but ``keep``, and every session being made or
        renewed meanwhile; returns how many live sessions ended.

        First, atomically, the user's epoch is bumped and ``keep`` (if it is live and
        of the current epoch) re-stamped with the new one: from then on no other
        session of the user is accepted anywhere, and no login that read the old epoch
        can create one. Then the revoked sessions are deleted (sessions made under the
        new epoch, by logins that began after the bump, are left alone). Callers change
        the users database first (disable, delete, new password), so that a login that
        reads the new epoch also reads the new user row."""
