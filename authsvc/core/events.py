"""Account events that leave the service (webhooks, issue 14): what happened, to whom,
as ids only (never an email, token, password or hash).

Two ways in, after what the event reports:

* State of the users database (registered, confirmed, disabled, deleted, password
  changed or reset, email changed): ``record(tx, …)`` in the transaction of the change
  itself, so the event exists exactly when the change does (``Changes.apply`` opens
  that transaction around a single users-table change).
* Redis-only state (``session.revoked``, ``login.locked``): no transaction spans Redis
  and the database, so ``publish(…)`` records the event in a transaction of its own
  right after the Redis change succeeded. A crash between the two, or the database
  being down then, loses that one event (logged and counted, never an error for the
  request whose change did happen).

Callers ask ``wants(type)`` first where the answer saves work: with no endpoint
subscribed to a type (webhooks off), nothing is written, and logout or a failed login
cost what they cost before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from authsvc.stores.base import UserStore
from authsvc.stores.outbox import TransactionalDatabase, UnitOfWork
from authsvc.stores.sql import SQLUserStore

EVENT_TYPES: tuple[str, ...] = (
    "user.registered",
    "user.confirmed",
    "user.disabled",
    "user.deleted",
    "password.changed",
    "password.reset",
    "email.changed",
    "session.revoked",
    "login.locked",
)

#: Why sessions ended (``session.revoked``'s ``reason``): the mutations logout,
#: logoutAll and revokeSession, a spent refresh token presented again, a new password
#: (changed, or reset by mail), the account disabled, an operator's `sessions revoke`.
REVOKE_REASONS: tuple[str, ...] = (
    "logout",
    "logout_all",
    "revoke_session",
    "reuse_detected",
    "password_changed",
    "password_reset",
    "disabled",
    "admin",
)

#: What an event carries besides its id, type and time: ids, counts, a reason.
Data = str | int

T = TypeVar("T")


class EventSink(Protocol):
    def wants(self, event_type: str) -> bool:
        """Whether any endpoint is subscribed to ``event_type`` (cheap: a set lookup)."""

    async def record(self, tx: UnitOfWork, event_type: str, **data: Data) -> None:
        """Record the event in ``tx``, once per subscribed endpoint (nothing when none
        is). Raises what ``tx`` raises (StoreUnavailable): the change rolls back."""

    async def publish(self, event_type: str, **data: Data) -> None:
        """``record`` in a transaction of its own, for Redis-only state. Never raises
        StoreUnavailable: the state changed already, so an event that cannot be
        recorded is logged and counted as lost."""


class NoEvents:
    """No endpoint configured: every event is unwanted."""

    def wants(self, event_type: str) -> bool:
        return False

    async def record(self, tx: UnitOfWork, event_type: str, **data: Data) -> None:
        return None

    async def publish(self, event_type: str, **data: Data) -> None:
        return None


NO_EVENTS: EventSink = NoEvents()


class Changes:
    """A users-table change together with the event that reports it: in one
    transaction when the event is wanted, as the single statement it was otherwise."""

    def __init__(self, db: TransactionalDatabase, users: SQLUserStore, events: EventSink) -> None:
        self._db = db
        self._users = users
        self.events = events

    async def apply(
        self, event_type: str, change: Callable[[UserStore], Awaitable[T]], **data: Data
    ) -> T:
        """Run ``change`` on the users table and record ``event_type`` with it. Raises
        what ``change`` raises (nothing is recorded then)."""
        if not self.events.wants(event_type):
            return await change(self._users)
        async with self._db.transaction() as tx:
            result = await change(self._users.within(tx))
            await self.events.record(tx, event_type, **data)
        return result


async def sessions_revoked(events: EventSink, user_id: str, reason: str, **data: Data) -> None:
    """Publish ``session.revoked`` (Redis-only state) when an endpoint wants it and a
    session did end: of racing ``logoutAll`` calls only the one that ended them reports
    it, so a receiver never sees the same revocation twice under two event ids."""
    if data.get("sessions") == 0:
        return
    if events.wants("session.revoked"):
        await events.publish("session.revoked", user_id=user_id, reason=reason, **data)
