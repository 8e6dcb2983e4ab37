"""A mail as the standard library's ``email`` package builds it: text and HTML parts,
a Message-ID made at enqueue on EMAIL_FROM's domain, a Date; bytes ready for SMTP."""

from __future__ import annotations

import email.policy
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

import idna

from authsvc.mail.templates import RenderedMail


def envelope_address(address: str) -> str:
    """``address`` as SMTP's envelope and the To header take it: the domain in ASCII, as
    stored emails keep it in Unicode. IDNA 2008 (the idna package, as email-validator
    normalized the address with): Python's own "idna" codec is IDNA 2003, which maps ß
    to ss (and final sigma to sigma), and sent the mail of bob@straße.de (its reset
    links) to bob@strasse.de. A local part that is not ASCII stays as it is (it needs
    SMTPUTF8: the sender decides). Raises ValueError for an address that is none."""
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise ValueError("not an email address")
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"not an email domain: {exc}") from None
    return f"{local}@{ascii_domain}"


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
