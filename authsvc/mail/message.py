"""A mail as the standard library's ``email`` package builds it: text and HTML parts,
a Message-ID made at enqueue on EMAIL_FROM's domain, a Date; bytes ready for SMTP."""

from __future__ import annotations

import email.policy
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from authsvc.mail.templates import RenderedMail


def envelope_address(address: str) -> str:
    """``address`` as SMTP's envelope and the To header take it: the domain in IDNA
    (ASCII), as stored emails keep it in Unicode. Raises ValueError for an address the
    email package cannot take."""
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise ValueError(f"not an email address: {address!r}")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def sender_address(email_from: str) -> tuple[str, str]:
    """(display name, address) of EMAIL_FROM ("Name <a@b>" or "a@b")."""
    name, address = parseaddr(email_from)
    if "@" not in address:
        raise ValueError(f"no address in {email_from!r}")
    return name, address


def compose(
    rendered: RenderedMail, *, email_from: str, to: str, now: datetime, kind: str
) -> EmailMessage:
    name, address = sender_address(email_from)
    message = EmailMessage()
    local, _, domain = envelope_address(address).rpartition("@")
    message["From"] = Address(display_name=name, username=local, domain=domain)
    message["To"] = envelope_address(to)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=domain)
    # RFC 3834: machines should not answer it (vacation replies, ticket systems).
    message["Auto-Submitted"] = "auto-generated"
    message["X-Authsvc-Kind"] = kind
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def to_bytes(message: EmailMessage) -> bytes:
    """The mail as it goes on the wire (CRLF line ends)."""
    return message.as_bytes(policy=email.policy.SMTP)
