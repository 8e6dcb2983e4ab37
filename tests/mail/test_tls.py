"""STARTTLS and SMTP_REQUIRE_TLS against a real aiosmtpd with a certificate made here:
TLS whenever offered, never a mail (nor a password) in clear when TLS is required, and
a certificate that cannot be trusted is a configuration fault that spends no attempt."""

from __future__ import annotations

import logging
import ssl

import pytest

from authsvc.services import open_services
from tests.conftest import settings_for
from tests.e2e.certificates import make_certificates
from tests.helpers import new_email
from tests.mail.conftest import FAST, empty_outbox, eventually
from tests.smtp_sink import SMTPSink

pytestmark = pytest.mark.parametrize("backend", ["embedded"])  # TLS is the subject here


@pytest.fixture
def certificates(tmp_path):
    folder = tmp_path / "tls"
    folder.mkdir()
    return make_certificates(folder)  # (ca, cert, key)


def starttls_sink(certificates, **kwargs) -> SMTPSink:
    _, cert, key = certificates
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SMTPSink(tls_context=context, **kwargs)
    sink.start()
    return sink


async def deliver_one(settings, sink):
    """Record a mail, let the loop run; returns (recipient, services) for the checks."""
    services = await open_services(settings)
    await empty_outbox(services)
    services.start_delivery()
    to = new_email()
    await services.mailer.send("confirm_email", to, link="https://x.example/c?token=t")
    return to, services


async def test_starttls_is_used_whenever_the_server_offers_it(
    backend, mysql_server, redis_server, tmp_path, certificates
):
    sink = starttls_sink(certificates, credentials=("mailer", "pw"))
    overrides = FAST | {"smtp_url": sink.url, "smtp_tls_ca": certificates[0]}
    settings = settings_for(backend, mysql_server, redis_server, tmp_path, **overrides)
    to, services = await deliver_one(settings, sink)
    try:
        capture = await eventually(lambda: _first(sink, to))
        assert capture.tls and capture.login == "mailer"
    finally:
        await services.close()
        sink.stop()


@pytest.mark.parametrize("offered", [False, True], ids=["no-starttls", "untrusted-certificate"])
async def test_no_mail_and_no_attempt_spent_without_a_trusted_tls_when_required(
    backend, mysql_server, redis_server, tmp_path, certificates, caplog, offered
):
    caplog.set_level(logging.INFO, logger="authsvc")
    sink = starttls_sink(certificates) if offered else SMTPSink()
    if not offered:
        sink.start()
    # No SMTP_TLS_CA: the test CA is not trusted, so the certificate is refused.
    settings = settings_for(backend, mysql_server, redis_server, tmp_path,
                            **FAST | {"smtp_url": sink.url, "smtp_require_tls": True})  # fmt: skip
    _, services = await deliver_one(settings, sink)
    try:
        await eventually(lambda: _logged(caplog, "check SMTP_URL"))
        await services.stop_delivery()
        [entry] = await services.outbox.list(10)
        assert entry.state == "queued" and entry.attempts == 0
        assert ("TLS" in entry.last_error) or ("STARTTLS" in entry.last_error)
        assert sink.captured == [] and sink.seen.get("RCPT", 0) == 0
    finally:
        await services.close()
        sink.stop()


async def _first(sink, to):
    found = sink.mails_to(to)
    return found[0] if found else None


async def _logged(caplog, text):
    return any(text in r.getMessage() for r in caplog.records)
