"""The outbox delivers over real SMTP (an aiosmtpd server on loopback), on MariaDB and
on the embedded SQLite store: in the request's transaction or not at all, through
outages, refusals and dead claimers."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from authsvc.metrics import mail_metrics
from tests.helpers import new_email
from tests.mail.conftest import eventually
from tests.smtp_sink import SMTPSink

LINK = "https://app.example.com/reset-password?token=tok123&next=/home"


async def enqueue(mail, to: str, kind: str = "reset_password", **variables) -> str:
    async with mail.users_db.transaction() as tx:
        return await mail.mailer.enqueue(tx, kind, to, link=LINK, expires_in="1 hour",
                                         **variables)  # fmt: skip


async def entry(mail, message_id: str):
    [found] = [e for e in await mail.outbox.list(1000) if e.id == message_id]
    return found


async def stored_body(mail, message_id: str):
    async with mail.users_db.transaction() as tx:
        mark = "%s" if type(mail.outbox).__name__.startswith("MySQL") else "?"
        sql = f"SELECT message FROM outbox WHERE id = {mark}"  # noqa: S608 - the marker only
        row = await tx.fetchone(sql, (message_id,))
    return row[0]


def sent_count(kind: str) -> float:
    return mail_metrics().sent.labels(kind)._value.get()


@pytest.mark.settings(outbox_poll_interval_s=60)
async def test_a_committed_mail_goes_out_at_once_with_its_link_intact(mail, smtp_sink):
    mail.start_delivery()
    await asyncio.sleep(0.1)  # the loop's first look found nothing; it waits 60 s now
    to = new_email()
    sent_before = sent_count("reset_password")
    started = time.monotonic()
    message_id = await enqueue(mail, to)
    message = await smtp_sink.next_mail(to, 10)
    assert time.monotonic() - started < 5  # woken by the commit, not by the 60 s poll
    assert SMTPSink.link(message) == LINK  # the text part is not HTML-escaped
    assert "token=tok123&amp;next=/home" in SMTPSink.html(message)  # the HTML part is
    assert message["To"] == to
    assert message["Subject"] == "Reset your authsvc password"
    assert message["Message-ID"].endswith("@example.com>")
    assert message["Date"]
    assert smtp_sink.mails_to(to)[0].sender == "no-reply@example.com"

    done = await eventually(lambda: _state(mail, message_id, "sent"))
    assert done.attempts == 1 and done.sent_at is not None and done.last_error is None
    assert await stored_body(mail, message_id) is None  # the single-use link is gone
    assert sent_count("reset_password") == sent_before + 1


async def _state(mail, message_id, state):
    found = await entry(mail, message_id)
    return found if found.state == state else None


async def test_a_rolled_back_transaction_leaves_no_mail(mail, smtp_sink):
    mail.start_delivery()
    lost, kept = new_email(), new_email()
    with pytest.raises(RuntimeError):
        async with mail.users_db.transaction() as tx:
            await mail.mailer.enqueue(tx, "confirm_email", lost, link=LINK)
            raise RuntimeError("the token insert failed")
    assert await mail.outbox.list(100) == []
    await enqueue(mail, kept)
    await smtp_sink.next_mail(kept, 10)
    assert smtp_sink.mails_to(lost) == []
    assert [e.recipient for e in await mail.outbox.list(100)] == [kept]


async def test_mail_recorded_while_smtp_is_down_goes_out_when_it_returns(mail, smtp_sink):
    mail.start_delivery()
    smtp_sink.stop()
    addresses = [new_email() for _ in range(3)]
    started = time.monotonic()
    for to in addresses:
        await enqueue(mail, to)
    assert time.monotonic() - started < 1.0  # recording never waits for SMTP
    await asyncio.sleep(1.0)  # a few failed tries
    tried = [e for e in await mail.outbox.list(100) if e.last_error]
    assert tried and all(e.state in ("queued", "sending") for e in tried)
    # No server reached is no try of the mail: an outage spends none of its budget.
    assert all(e.attempts == 0 for e in tried if e.state == "queued"), tried
    smtp_sink.start()
    for to in addresses:
        await smtp_sink.next_mail(to, 15)
        assert len(smtp_sink.mails_to(to)) == 1


async def test_a_temporary_refusal_is_retried_until_accepted(mail, smtp_sink):
    smtp_sink.refuse("RCPT", "451 4.3.0 try later", "452 4.2.2 mailbox full")
    mail.start_delivery()
    to = new_email()
    message_id = await enqueue(mail, to)
    await smtp_sink.next_mail(to, 15)
    done = await eventually(lambda: _state(mail, message_id, "sent"))
    assert done.attempts == 3
    assert smtp_sink.seen["RCPT"] == 3


@pytest.mark.parametrize(
    ("command", "reply"),
    [("RCPT", "550 5.1.1 no such user"), ("DATA", "554 5.6.0 message refused")],
)
async def test_a_permanent_refusal_is_dead_at_once_and_logged_without_the_link(
    mail, smtp_sink, caplog, command, reply
):
    caplog.set_level(logging.INFO, logger="authsvc")
    smtp_sink.always[command] = reply
    dead_before = mail_metrics().dead.labels("reset_password")._value.get()
    mail.start_delivery()
    message_id = await enqueue(mail, new_email())
    dead = await eventually(lambda: _state(mail, message_id, "dead"))
    assert dead.attempts == 1 and reply[:3] in (dead.last_error or "")
    await asyncio.sleep(0.5)
    assert smtp_sink.seen[command] == 1  # never tried again
    assert mail_metrics().dead.labels("reset_password")._value.get() == dead_before + 1
    lines = [r.getMessage() for r in caplog.records if "is dead" in r.getMessage()]
    assert len(lines) == 1 and message_id in lines[0] and "@example.com" in lines[0]
    assert not any("tok123" in r.getMessage() for r in caplog.records)
    assert await stored_body(mail, message_id) is not None  # kept for a retry


@pytest.mark.settings(outbox_max_attempts=3)
async def test_a_mail_always_refused_for_now_is_dead_after_the_last_attempt(mail, smtp_sink):
    smtp_sink.always["RCPT"] = "451 4.3.0 try later"
    mail.start_delivery()
    message_id = await enqueue(mail, new_email())
    dead = await eventually(lambda: _state(mail, message_id, "dead"))
    assert dead.attempts == 3 and "451" in (dead.last_error or "")
    await asyncio.sleep(0.5)
    assert smtp_sink.seen["RCPT"] == 3


@pytest.fixture
def auth_sink():
    sink = SMTPSink(credentials=("mailer", "right-password"))
    sink.start()
    yield sink
    sink.stop()


async def test_a_refused_login_spends_no_attempt_and_is_logged_once(
    io_loop, backend, mysql_server, redis_server, tmp_path, auth_sink, caplog
):
    from authsvc.services import open_services
    from tests.conftest import settings_for
    from tests.mail.conftest import FAST, empty_outbox

    caplog.set_level(logging.INFO, logger="authsvc")
    wrong = auth_sink.url.replace("right-password", "wrong-password")
    settings = settings_for(backend, mysql_server, redis_server, tmp_path,
                            **FAST | {"smtp_url": wrong})  # fmt: skip
    mail = await open_services(settings)
    try:
        await empty_outbox(mail)
        mail.start_delivery()
        message_id = await enqueue(mail, new_email())
        await eventually(lambda: _true(auth_sink.auth_failures >= 3))
        waiting = await entry(mail, message_id)
        assert waiting.state in ("queued", "sending") and waiting.attempts <= 1
        await mail.stop_delivery()
        waiting = await entry(mail, message_id)
        assert waiting.attempts == 0 and "AUTH" in (waiting.last_error or "")
        faults = [r for r in caplog.records if "check SMTP_URL" in r.getMessage()]
        assert len(faults) == 1 and faults[0].levelno == logging.ERROR  # throttled
        assert not any("wrong-password" in r.getMessage() for r in caplog.records)
        assert auth_sink.captured == []
    finally:
        await mail.close()


async def _true(value):
    return value


@pytest.mark.settings(smtp_timeout_s=0.5, outbox_lease_s=1.0)
async def test_a_mail_whose_claimer_died_is_delivered_once_its_lease_passes(mail, smtp_sink):
    to = new_email()
    message_id = await enqueue(mail, to)
    [claim] = await mail.outbox.claim("email", 10, lease_s=1.0)  # ... and its claimer dies
    assert await mail.outbox.claim("email", 10, lease_s=1.0) == []  # leased: not due
    mail.start_delivery()
    await asyncio.sleep(0.5)
    assert smtp_sink.mails_to(to) == []  # still within the lease
    await smtp_sink.next_mail(to, 10)
    done = await eventually(lambda: _state(mail, message_id, "sent"))
    assert done.attempts == 2  # the dead claimer's try counts
    # The first claimer, come back to life, can record nothing: its fence is stale.
    assert not await mail.outbox.mark_sent(claim)
    assert not await mail.outbox.retry_later(claim, 1.0, "late")
    assert (await entry(mail, message_id)).state == "sent"


async def test_sent_mail_is_pruned_once_past_its_keeping(mail, smtp_sink):
    """Sent rows (bodies blank) are kept OUTBOX_KEEP_SENT_S, then deleted by the
    workers: the table holds what waits and a bounded history."""
    mail.start_delivery()
    to = new_email()
    message_id = await enqueue(mail, to)
    await smtp_sink.next_mail(to, 15)
    await eventually(lambda: _state(mail, message_id, "sent"))
    assert await mail.outbox.purge_sent("email", 3600, 1000) == 0  # sent just now: kept
    await asyncio.sleep(0.1)
    await mail.outbox.purge_sent("webhook", 0.05, 1000)  # another channel's: not this
    assert any(e.id == message_id for e in await mail.outbox.list(1000))
    assert await mail.outbox.purge_sent("email", 0.05, 1000) >= 1
    assert all(e.id != message_id for e in await mail.outbox.list(1000))
