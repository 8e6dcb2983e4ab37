"""What the account flows call to send mail: compose a kind from its templates and
record it in the outbox, inside the caller's transaction.

    async with services.users_db.transaction() as tx:
        await token_store.insert(tx, …)      # the state the mail reports
        await services.mailer.enqueue(tx, "reset_password", to=user.email,
                                      link=link, expires_in=human_duration(3600))

Both rows commit together or not at all; once committed, the local delivery loop is
woken at once. ``send`` is the same in a transaction of its own, for a mail that goes
with no other row (password_changed).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from authsvc.core.clock import Clock
from authsvc.mail.message import compose, envelope_address, to_bytes
from authsvc.mail.templates import MailTemplates
from authsvc.metrics import mail_metrics
from authsvc.stores.outbox import OutboxStore, OutgoingMessage, TransactionalDatabase, UnitOfWork


class Mailer:
    def __init__(
        self,
        templates: MailTemplates,
        outbox: OutboxStore,
        db: TransactionalDatabase,
        clock: Clock,
        *,
        email_from: str,
        service_name: str,
        enabled: bool,
    ) -> None:
        """``enabled``: False in production without SMTP_URL, where nothing could be
        delivered (the flows answer EMAIL_DISABLED rather than queue mail forever)."""
        self.enabled = enabled
        self._templates = templates
        self._outbox = outbox
        self._db = db
        self._clock = clock
        self._email_from = email_from
        self._service_name = service_name
        self._committed: list[Callable[[], None]] = []

    def on_committed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each commit that recorded mail (the delivery loop's
        wake)."""
        self._committed.append(callback)

    def render(self, kind: str, to: str, **variables: Any) -> OutgoingMessage:
        """The mail as it will be recorded: rendered now, with a new Message-ID.
        Raises TemplateError, or ValueError for an address that cannot be mailed."""
        values = {"email": to, "service_name": self._service_name} | variables
        rendered = self._templates.render(kind, **values)
        message = compose(rendered, email_from=self._email_from, to=to, now=self._clock(),
                          kind=kind)  # fmt: skip
        return OutgoingMessage(
            id=uuid.uuid4().hex, kind=kind, recipient=envelope_address(to),
            message=to_bytes(message),
        )  # fmt: skip

    async def enqueue(self, tx: UnitOfWork, kind: str, to: str, **variables: Any) -> str:
        """Record a mail of ``kind`` to ``to`` in ``tx``; returns its outbox id.
        Template variables: link, expires_in, new_email, completed (``email`` is ``to``
        and ``service_name`` EMAIL_SERVICE_NAME unless given). Raises TemplateError,
        or ValueError for an address that cannot be mailed; and what ``tx`` raises
        (StoreUnavailable). When not ``enabled`` the mail is recorded all the same and
        waits (``authsvc outbox list``) until a process with SMTP_URL sends it: a flow
        that must not promise a mail checks ``enabled`` first."""
        outgoing = self.render(kind, to, **variables)
        await self._outbox.enqueue(tx, outgoing)
        tx.after_commit(lambda: self._queued(kind))
        return outgoing.id

    async def send(self, kind: str, to: str, **variables: Any) -> str:
        """``enqueue`` in a transaction of its own."""
        async with self._db.transaction() as tx:
            return await self.enqueue(tx, kind, to, **variables)

    def _queued(self, kind: str) -> None:
        mail_metrics().queued.labels(kind).inc()
        for callback in self._committed:
            callback()
