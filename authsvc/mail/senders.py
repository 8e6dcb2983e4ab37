"""Senders: how a recorded mail leaves. SMTPSender speaks SMTP with aiosmtplib;
LogSender (development without SMTP_URL) writes the mail to the log instead; MailChannel
is either one as the delivery loop's "email" channel (delivery/channel.py).

A sender opens a session per batch (one SMTP connection for several mails) and raises
DeliveryError with the Failure that decides the message's fate (core/outbox.py). The
error's text is the server's reply or the transport's error, never the mail: it is
stored as the message's last_error and logged.
"""

from __future__ import annotations

import email
import email.policy
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import unquote

import aiosmtplib

from authsvc.core.outbox import Failure
from authsvc.delivery.channel import ChannelSession, DeliveryError
from authsvc.settings import split_smtp_url

log = logging.getLogger(__name__)


class SendSession(Protocol):
    async def send(self, envelope_from: str, recipient: str, message: bytes) -> None:
        """Deliver one mail. Raises DeliveryError."""


class Sender(Protocol):
    def session(self) -> AbstractAsyncContextManager[SendSession]: ...


class MailChannel:
    """Mail as the delivery loop sends it: one SMTP server for every recipient (one
    route, so one connection a batch and an outage noticed at the first mail), mails
    one at a time, from EMAIL_FROM's address."""

    name = "email"
    concurrency = 1
    settings_hint = "SMTP_URL and the SMTP_* settings"

    def __init__(self, sender: Sender, envelope_from: str) -> None:
        self._sender = sender
        self._envelope_from = envelope_from

    def route(self, recipient: str) -> str:
        return "smtp"

    def describe(self, recipient: str) -> str:
        """The domain only."""
        return "@" + recipient.rpartition("@")[2]

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ChannelSession]:
        async with self._sender.session() as session:
            yield _FromAddress(session, self._envelope_from)


class _FromAddress:
    def __init__(self, session: SendSession, envelope_from: str) -> None:
        self._session = session
        self._envelope_from = envelope_from

    async def send(self, recipient: str, message: bytes) -> None:
        await self._session.send(self._envelope_from, recipient, message)


@dataclass(frozen=True, slots=True)
class SMTPConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool
    require_tls: bool
    timeout_s: float
    ca_file: str | None = None

    @classmethod
    def from_url(
        cls, url: str, *, require_tls: bool, timeout_s: float, ca_file: str | None = None
    ) -> SMTPConfig:
        """From ``smtp://user:pass@host:port`` (STARTTLS when offered) or ``smtps://…``
        (TLS from the first byte). Raises ValueError, never quoting the password."""
        parts = split_smtp_url(url)
        implicit = parts.scheme == "smtps"
        assert parts.hostname  # split_smtp_url checked it
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            implicit_tls=implicit,
            require_tls=require_tls,
            timeout_s=timeout_s,
            ca_file=ca_file,
        )


class SMTPSender:
    def __init__(self, config: SMTPConfig) -> None:
        self._config = config

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SendSession]:
        session = _SMTPSession(self._config)
        try:
            yield session
        finally:
            await session.close()


class _SMTPSession:
    """One SMTP connection, opened at the first send and opened again after a failure
    that broke it."""

    def __init__(self, config: SMTPConfig) -> None:
        self._config = config
        self._client: aiosmtplib.SMTP | None = None

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> None:
        if not recipient.isascii():
            # Its local part is not ASCII: only SMTPUTF8 carries it, and the message is
            # composed for 7-bit transport. This mail cannot go; no other is held up.
            raise DeliveryError(
                Failure.PERMANENT, "the recipient's address is not ASCII (needs SMTPUTF8)"
            )
        if self._client is None or not self._client.is_connected:
            self._client = await self._connected()
        try:
            await self._client.sendmail(envelope_from, [recipient], message)
        except DeliveryError:
            await self.close()
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = classify(exc)
            if error.connection or error.failure is Failure.CONFIGURATION:
                await self.close()
            raise error from exc
        except Exception as exc:  # the library choked on this mail: it alone fails
            if self._client is not None:
                self._client.close()  # mid-transaction: not to be reused
                self._client = None
            raise DeliveryError(
                Failure.PERMANENT, f"unexpected {type(exc).__name__} sending it"
            ) from exc

    async def _connected(self) -> aiosmtplib.SMTP:
        """A new connection. Raises DeliveryError, ``unreached`` when the server could
        not be reached at all (a TLS or AUTH refusal is the configuration's)."""
        try:
            return await self._connect()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = classify(exc)
            if error.connection and error.failure is Failure.TEMPORARY:
                error = DeliveryError(error.failure, str(error), unreached=True)
            raise error from exc

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self._config
        tls_context = None
        if config.implicit_tls or config.ca_file:
            tls_context = ssl.create_default_context(cafile=config.ca_file)
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            timeout=config.timeout_s,
            use_tls=config.implicit_tls,
            # Required: STARTTLS or fail before AUTH (no password in clear); else
            # None: STARTTLS whenever the server offers it.
            start_tls=None if config.implicit_tls else (True if config.require_tls else None),
            tls_context=tls_context,
        )
        await client.connect()
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()


def classify(exc: BaseException) -> DeliveryError:
    """The DeliveryError an aiosmtplib (or transport) error comes to."""
    code = getattr(exc, "code", None)
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        first = exc.recipients[0]  # one recipient per mail here
        exc, code, text = first, first.code, f"SMTPRecipientRefused: {first}"
    if _tls_failure(exc):
        return DeliveryError(Failure.CONFIGURATION, f"TLS failed: {text}", connection=True)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return DeliveryError(Failure.CONFIGURATION, f"SMTP AUTH refused: {text}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        type(exc) is aiosmtplib.SMTPException and "STARTTLS" in str(exc)
    ):
        return DeliveryError(Failure.CONFIGURATION, text)
    if isinstance(exc, aiosmtplib.SMTPResponseException) and isinstance(code, int):
        if 400 <= code < 500:
            return DeliveryError(Failure.TEMPORARY, text)
        if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
            return DeliveryError(Failure.PERMANENT, text)  # this message, for good
        # 5xx to HELO or MAIL FROM, or on connect: every mail would get it.
        return DeliveryError(Failure.CONFIGURATION, text)
    # Refused, timed out, dropped: the server is down or unreachable now.
    return DeliveryError(Failure.TEMPORARY, text, connection=True)


def _tls_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class LogSender:
    """Development without SMTP_URL: each mail goes to the log at INFO (recipient,
    subject, text part with its link) so that every flow can be tried with `make run`.
    The only place a link may reach a log; never used in production."""

    @asynccontextmanager
    async def session(self) -> AsyncIterator[SendSession]:
        yield self

    async def send(self, envelope_from: str, recipient: str, message: bytes) -> None:
        parsed = email.message_from_bytes(message, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        log.info("mail not sent (no SMTP_URL), to %s: %s\n%s", recipient, parsed["Subject"], text)
