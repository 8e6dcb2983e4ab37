"""What the delivery loop needs of a channel (mail, webhooks): a session that sends one
recorded message to its recipient, and the DeliveryError whose Failure decides the
message's fate (core/outbox.py).

The error's text is the server's reply or the transport's error, never the message: it
is stored as the message's last_error and logged.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol

from authsvc.core.outbox import Failure


class DeliveryError(Exception):
    """A message was not delivered. ``connection``: the server could not be reached or
    dropped the connection (every message after it to the same route would fail the
    same). ``retry_after_s``: the server asked to be left alone this long (HTTP
    Retry-After)."""

    def __init__(
        self,
        failure: Failure,
        message: str,
        *,
        connection: bool = False,
        unreached: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        """``unreached``: no connection could be made at all (refused, timed out, no
        route) to a server every message of the channel goes through (SMTP): the
        message itself was never tried, and the attempt is not counted."""
        super().__init__(message)
        self.failure = failure
        self.connection = connection or unreached
        self.unreached = unreached
        self.retry_after_s = retry_after_s


class ChannelSession(Protocol):
    async def send(self, recipient: str, message: bytes) -> None:
        """Deliver one message. Raises DeliveryError."""


class Channel(Protocol):
    """A kind of delivery: the outbox channel it serves and how it sends."""

    #: The outbox's ``channel`` column ("email", "webhook").
    name: str
    #: Routes (servers) sent to at once in one batch; the messages of one route go
    #: one after the other, in the batch's order.
    concurrency: int
    #: What an operator checks when the channel's configuration is at fault.
    settings_hint: str

    def route(self, recipient: str) -> str:
        """The server a message to ``recipient`` goes through: one SMTP server for all
        mail, one endpoint per webhook URL. A broken connection fails the rest of the
        batch's messages of that route without trying each."""

    def describe(self, recipient: str) -> str:
        """What the log says of a recipient (a mail's domain only)."""

    def session(self) -> AbstractAsyncContextManager[ChannelSession]:
        """One batch's session (one SMTP connection for several mails)."""
