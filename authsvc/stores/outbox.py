"""The outbox: messages recorded in the users database in the request's transaction and
delivered later by the delivery loop of every serving process (DESIGN §7).

A message's life: ``queued`` -> (claimed) ``sending`` -> ``sent`` | back to ``queued``
(a retry) | ``dead``. A claim is a lease: it pushes ``next_attempt_at`` to the end of
the lease (on the database's clock, so hosts with skewed clocks agree) and bumps the
row's fence, so a claimer that died leaves its message to be claimed again once the
lease has passed, and a claimer whose lease passed cannot record an outcome any more
(its fence is stale). The attempt is counted at claim time: a process that dies while
sending spends it too, so a message that kills its sender is bounded like any other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

State = Literal["queued", "sending", "sent", "dead"]
STATES: tuple[State, ...] = ("queued", "sending", "sent", "dead")
#: The longest last_error kept: the server's reply, never the message.
MAX_ERROR_CHARS = 500


class UnitOfWork(Protocol):
    """The statements of one open database transaction (``TransactionalDatabase.
    transaction()``). Each raises StoreUnavailable; ``execute`` raises UniqueViolation
    for a unique index. Placeholders are the driver's (``%s`` MySQL, ``?`` SQLite)."""

    async def fetchone(self, sql: str, args: Sequence[Any] = ()) -> Sequence[Any] | None: ...

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> Sequence[Sequence[Any]]: ...

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it matched."""

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the transaction has committed (never after a
        rollback): how an enqueued message wakes the delivery loop."""


class TransactionalDatabase(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """``async with db.transaction() as tx``: BEGIN; COMMIT when the block ends,
        ROLLBACK when it raises (the exception goes on). Keep it short: it holds a
        pooled connection (MySQL) or the file's write lock (SQLite)."""


class OutboxDatabase(TransactionalDatabase, Protocol):
    """What the outbox table needs: single statements (autocommit) and transactions."""

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> Sequence[Sequence[Any]]: ...

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A message as it is recorded: rendered whole, so that a later template change
    never alters a mail already queued."""

    id: str
    kind: str
    recipient: str
    message: bytes
    channel: str = "email"


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message leased to one claimer; ``fence`` proves the lease is still its."""

    id: str
    kind: str
    recipient: str
    message: bytes
    attempts: int  # counting this one
    fence: int


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A message as an operator sees it: never its body (it may carry a token link)."""

    id: str
    channel: str
    kind: str
    recipient: str
    state: State
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Messages waiting (queued or being sent) and the age of the oldest one."""

    depth: int
    oldest_age_s: float


class OutboxStore(Protocol):
    async def enqueue(self, tx: UnitOfWork, message: OutgoingMessage) -> None:
        """Record ``message`` as queued and due now, inside the caller's transaction."""

    async def claim(
        self, channel: str, limit: int, lease_s: float, skip: Sequence[str] = ()
    ) -> list[ClaimedMessage]:
        """Lease up to ``limit`` due messages of ``channel`` (queued, or sending with a
        lease that has passed), oldest due first, in one short transaction: each
        attempt is counted and its fence bumped. Rows another claimer holds are skipped,
        not waited for; so are the messages to the recipients in ``skip`` (webhook
        endpoints this claimer is still sending to)."""

    async def mark_sent(self, claim: ClaimedMessage) -> bool:
        """Sent: the body is blanked, the metadata kept. False if the lease was lost."""

    async def retry_later(self, claim: ClaimedMessage, delay_s: float, error: str) -> bool:
        """Queued again, due in ``delay_s``. False if the lease was lost."""

    async def release(self, claim: ClaimedMessage, delay_s: float, error: str) -> bool:
        """Queued again, due in ``delay_s``, the claim's attempt not counted (a fault of
        the configuration, not of the message). False if the lease was lost."""

    async def mark_dead(self, claim: ClaimedMessage, error: str) -> bool:
        """Dead: kept (body too) for an operator to retry or purge. False if the
        lease was lost."""

    async def list(self, limit: int, state: State | None = None) -> list[OutboxEntry]:
        """Messages, newest first."""

    async def requeue(self, message_id: str) -> bool:
        """A dead (or queued) message queued again and due now, its attempts reset."""

    async def requeue_dead(self) -> int:
        """Every dead message queued again; returns how many."""

    async def purge_dead(self) -> int:
        """Delete every dead message; returns how many."""

    async def purge_sent(self, channel: str, older_than_s: float, limit: int) -> int:
        """Delete up to ``limit`` messages of ``channel`` sent more than ``older_than_s``
        ago (their bodies are blank already: what is left is the record that they went
        out). Each channel's loop prunes its own, so two loops never repeat the work."""

    async def stats(self, channel: str) -> OutboxStats: ...


def error_text(error: str) -> str:
    """What last_error keeps of a failure: one line, bounded."""
    return " ".join(error.split())[:MAX_ERROR_CHARS]
