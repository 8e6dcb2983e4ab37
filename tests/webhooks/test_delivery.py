"""Webhooks through the outbox to a real receiver on loopback: retried after a 500, a
dropped connection and a 429 (its Retry-After honoured, capped), dead after the
attempts allowed (and listed by `authsvc outbox list`), one endpoint's failures never
another's, and a stalled endpoint holding up neither the others nor mail."""

from __future__ import annotations

import subprocess
import time

import pytest
from standardwebhooks import Webhook

from authsvc.metrics import webhook_metrics
from tests.e2e.processes import authsvc_command, child_env
from tests.helpers import new_email
from tests.mail.conftest import eventually
from tests.webhook_receiver import DROP, STALL, Answer
from tests.webhooks.conftest import SECRETS

servers_only = pytest.mark.parametrize("backend", ["servers"], indirect=True)
embedded_only = pytest.mark.parametrize("backend", ["embedded"], indirect=True)


async def revoked(services, count: int = 1) -> None:
    """``count`` events recorded in one transaction (so one batch claims them all)."""
    async with services.users_db.transaction() as tx:
        for n in range(count):
            await services.events.record(tx, "session.revoked", user_id=f"u{n}",
                                         reason="logout", session_id=f"s{n}")  # fmt: skip


async def rows(services, path: str, receiver):
    url = receiver.url(path)
    return [e for e in await services.outbox.list(1000) if e.recipient == url]


async def test_a_500_and_a_dropped_connection_are_retried_until_delivered(services, receiver):
    receiver.script("/a", Answer(500), DROP)
    await revoked(services)
    tries = [await receiver.next("/a") for _ in range(3)]
    assert len({t.headers["webhook-id"] for t in tries}) == 1  # one event: dedupe by id
    assert len({t.body for t in tries}) == 1  # the body as rendered at the event
    for secret in SECRETS["/a"]:
        Webhook(secret).verify(tries[-1].body, tries[-1].headers)
    [row] = await eventually(lambda: _in_state(services, "/a", receiver, "sent"))
    assert row.attempts == 3 and row.last_error is None
    assert len(receiver.to("/b")) == 1  # the other endpoint got it once, at once
    [other] = await rows(services, "/b", receiver)
    assert (other.state, other.attempts) == ("sent", 1)


async def _in_state(services, path, receiver, state):
    found = await rows(services, path, receiver)
    return found if found and all(r.state == state for r in found) else None


@servers_only
@pytest.mark.settings(outbox_backoff_max_s=2.0)
async def test_retry_after_is_honoured_up_to_the_longest_backoff(services, receiver):
    receiver.script("/a", Answer(429, retry_after="1"), Answer(503, retry_after="3600"))
    await revoked(services)
    first, second, third = [await receiver.next("/a", 10) for _ in range(3)]
    assert second.at - first.at >= 0.95  # asked for 1 s: the backoff alone is 0.1-0.2 s
    assert 1.9 <= third.at - second.at < 3.5  # asked for an hour: capped at 2 s
    [row] = await eventually(lambda: _in_state(services, "/a", receiver, "sent"))
    assert row.attempts == 3


@pytest.mark.settings(outbox_max_attempts=3)
async def test_an_endpoint_that_keeps_failing_is_dead_after_the_attempts_allowed(
    services, receiver
):
    receiver.always["/a"] = Answer(500)
    dead_before = webhook_metrics().dead.labels("session.revoked")._value.get()
    await revoked(services)
    [row] = await eventually(lambda: _in_state(services, "/a", receiver, "dead"))
    assert row.attempts == 3 and row.last_error.startswith("HTTP 500")
    assert "refused, and a long body" not in row.last_error  # the answer's body is not kept
    assert len(receiver.to("/a")) == 3
    assert webhook_metrics().dead.labels("session.revoked")._value.get() == dead_before + 1
    [delivered] = await rows(services, "/b", receiver)
    assert delivered.state == "sent"
    # Queued again by hand, it goes out once the receiver is mended.
    del receiver.always["/a"]
    assert await services.outbox.requeue(row.id)
    await eventually(lambda: _in_state(services, "/a", receiver, "sent"))
    assert len(receiver.to("/a")) == 4


@embedded_only
@pytest.mark.settings(outbox_max_attempts=1)
async def test_outbox_list_shows_the_webhook_rows_with_their_endpoint(services, receiver, settings):
    receiver.always["/a"] = Answer(410)
    await revoked(services)
    await eventually(lambda: _in_state(services, "/a", receiver, "dead"))
    await eventually(lambda: _in_state(services, "/b", receiver, "sent"))
    env = child_env({"SQLITE_PATH": settings.sqlite_path, "JWT_KEYS_DIR": settings.jwt_keys_dir})
    listing = subprocess.run(authsvc_command("outbox", "list"), env=env, capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    [dead] = [line for line in lines if " dead " in line]
    assert "  webhook  session.revoked  dead  attempts 1" in dead
    assert f"to {receiver.url('/a')}" in dead and "HTTP 410" in dead
    [sent] = [line for line in lines if " sent " in line]
    assert f"to {receiver.url('/b')}" in sent
    assert lines[-1] == "2 messages"


@servers_only
@pytest.mark.settings(webhook_timeout_s=2.0, outbox_lease_s=6.0, outbox_backoff_base_s=5.0,
                      outbox_backoff_max_s=10.0)  # fmt: skip
async def test_a_stalled_endpoint_holds_up_neither_the_others_nor_mail(
    services, receiver, smtp_sink
):
    receiver.always["/b"] = STALL
    started = time.monotonic()
    await revoked(services, 3)
    for _ in range(3):
        await receiver.next("/a", 5)
    assert time.monotonic() - started < 1.0  # /b's first send is still hanging
    later = time.monotonic()
    await revoked(services)  # claimed and sent to /a while /b's task still waits
    await receiver.next("/a", 5)
    assert time.monotonic() - later < 0.8 and time.monotonic() - started < 1.8
    to = new_email()
    await services.mailer.send("confirm_email", to, link="https://x.example/c?token=t")
    await smtp_sink.next_mail(to, 5)
    assert time.monotonic() - started < 1.9
    # /b timed out once for the batch: its other two were not tried, only put back.
    stalled = await eventually(lambda: _retried(services, "/b", receiver), timeout_s=5)
    assert all("Timeout" in (r.last_error or "") for r in stalled), stalled
    assert len(receiver.to("/b")) <= 2  # one try for those three, one for the later event


async def _retried(services, path, receiver):
    found = [r for r in await rows(services, path, receiver) if r.last_error]
    return found if len(found) >= 3 and all(r.state == "queued" for r in found) else None


async def test_a_claim_leaves_out_the_endpoints_being_sent_to(services, receiver):
    await services.stop_delivery()  # this test claims by hand
    await revoked(services, 2)
    busy, idle = receiver.url("/a"), receiver.url("/b")
    claims = await services.outbox.claim("webhook", 10, 5.0, skip=(busy,))
    assert [c.recipient for c in claims] == [idle, idle]
    assert [c.recipient for c in await services.outbox.claim("webhook", 10, 5.0)] == [busy] * 2
