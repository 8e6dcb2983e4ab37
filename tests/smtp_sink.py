"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1 (a thread of its own),
capturing every mail it accepts, with scripted refusals, AUTH, STARTTLS and stalls.

    sink = SMTPSink(); sink.start()
    mail = sink.wait_for("ada@example.com")      # the next unread mail to that address
    link = sink.link(mail)                        # the first URL with token= in its text
    sink.refuse("RCPT", "451 4.3.0 try later")    # the next RCPT gets that, once
    sink.always["RCPT"] = "550 5.1.1 no such user"  # every RCPT, until removed
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.e2e.processes import free_port

LINK = re.compile(r"https?://\S*token=\S+")


@dataclass
class Captured:
    sender: str
    recipients: list[str]
    data: bytes
    tls: bool
    login: str | None

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SMTPSink:
    port: int = field(default_factory=free_port)
    #: STARTTLS offered with this context (the server's certificate).
    tls_context: ssl.SSLContext | None = None
    require_starttls: bool = False
    #: (user, password) accepted by AUTH; None: no AUTH offered.
    credentials: tuple[str, str] | None = None
    captured: list[Captured] = field(default_factory=list)
    #: Replies that replace the next ones to a command ("RCPT", "DATA"), once each.
    scripted: dict[str, deque[str]] = field(default_factory=dict)
    #: Replies to every one of a command while set.
    always: dict[str, str] = field(default_factory=dict)
    #: While set, every RCPT waits (a server that stalls mid-transaction).
    stall: threading.Event = field(default_factory=threading.Event)
    #: How many times each command was answered, refusals included.
    seen: dict[str, int] = field(default_factory=dict)
    auth_failures: int = 0
    #: Seconds each accepted DATA takes (a server that is not instant).
    data_delay_s: float = 0.0

    def __post_init__(self) -> None:
        self._changed = threading.Condition()
        self._read: set[int] = set()
        self._controller: Controller | None = None

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs |= {"authenticator": self._authenticate, "auth_require_tls": False}
        if self.tls_context is not None:
            kwargs |= {"tls_context": self.tls_context, "require_starttls": self.require_starttls}
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **kwargs
        )
        self._controller.start()

    def stop(self) -> None:
        self.stall.clear()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def url(self) -> str:
        if self.credentials:
            return f"smtp://{self.credentials[0]}:{self.credentials[1]}@127.0.0.1:{self.port}"
        return f"smtp://127.0.0.1:{self.port}"

    def refuse(self, command: str, *replies: str) -> None:
        self.scripted.setdefault(command, deque()).extend(replies)

    def mails_to(self, address: str) -> list[Captured]:
        with self._changed:
            return [c for c in self.captured if address in c.recipients]

    def wait_for(self, address: str, timeout_s: float = 15.0) -> EmailMessage:
        """The next mail to ``address`` not returned before; AssertionError after
        ``timeout_s`` without one."""
        return self.wait_for_capture(address, timeout_s).message

    def wait_for_capture(self, address: str, timeout_s: float = 15.0) -> Captured:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for index, capture in enumerate(self.captured):
                    if index not in self._read and address in capture.recipients:
                        self._read.add(index)
                        return capture
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail to {address} within {timeout_s} s")
                self._changed.wait(left)

    async def next_mail(self, address: str, timeout_s: float = 15.0) -> EmailMessage:
        """``wait_for`` for async tests: the event loop goes on meanwhile."""
        return await asyncio.to_thread(self.wait_for, address, timeout_s)

    @staticmethod
    def text(message: EmailMessage) -> str:
        body = message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content())

    @staticmethod
    def html(message: EmailMessage) -> str:
        body = message.get_body(preferencelist=("html",))
        assert body is not None
        return str(body.get_content())

    @classmethod
    def link(cls, message: EmailMessage) -> str:
        """The first link with ``token=`` in the text part."""
        found = LINK.search(cls.text(message))
        assert found, cls.text(message)
        return found.group(0)

    def _count(self, command: str) -> str | None:
        with self._changed:
            self.seen[command] = self.seen.get(command, 0) + 1
            queue = self.scripted.get(command)
            if queue:
                return queue.popleft()
            return self.always.get(command)

    def _capture(self, capture: Captured) -> None:
        with self._changed:
            self.captured.append(capture)
            self._changed.notify_all()

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        if not ok:
            with self._changed:
                self.auth_failures += 1
        if ok:
            return AuthResult(success=True, auth_data=auth_data.login.decode())
        return AuthResult(success=False, handled=False)  # handled=False: aiosmtpd says 535


class _Handler:
    def __init__(self, sink: SMTPSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        while self.sink.stall.is_set():
            await asyncio.sleep(0.05)
        reply = self.sink._count("RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.sink._count("DATA")
        if reply:
            return reply
        if self.sink.data_delay_s:
            await asyncio.sleep(self.sink.data_delay_s)
        login = session.auth_data if session.authenticated else None
        self.sink._capture(
            Captured(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
                     or envelope.content, session.ssl is not None, login)
        )  # fmt: skip
        return "250 Message accepted for delivery"
