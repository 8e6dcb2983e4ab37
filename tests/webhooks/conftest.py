"""Webhook fixtures: a real receiver on loopback (tests/webhook_receiver.py), the
services of both backends with WEBHOOKS pointed at it and short waits, the delivery
loops running on the test's loop, and an outbox emptied before each test (MariaDB's is
shared by the run's tests)."""

from __future__ import annotations

import base64
import json
import secrets

import pytest

from authsvc.services import open_services
from tests.conftest import settings_for
from tests.mail.conftest import empty_outbox
from tests.webhook_receiver import WebhookReceiver

PUBLIC_URL = "https://auth.example.test"

#: Waits short enough for a test, long enough to be waits.
FAST = {
    "outbox_poll_interval_s": 0.2,
    "outbox_backoff_base_s": 0.2,
    "outbox_backoff_max_s": 0.5,
    "outbox_max_attempts": 20,
    "outbox_lease_s": 5.0,
    "webhook_timeout_s": 1.0,
    "smtp_timeout_s": 2.0,
    "email_request_answer_s": 0.0,
    "email_resend_cooldown_s": 0,
}


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


#: The endpoints' secrets: /a has two (a rotation under way), the others one.
SECRETS = {"/a": [new_secret(), new_secret()], "/b": [new_secret()]}


def endpoints(receiver: WebhookReceiver, **events: list[str]) -> str:
    """WEBHOOKS for /a (every event) and /b (every event), and an endpoint per keyword
    (its path) that wants only the events listed."""
    hooks = [{"url": receiver.url(path), "secrets": SECRETS[path]} for path in ("/a", "/b")]
    hooks += [{"url": receiver.url(f"/{path}"), "secrets": SECRETS["/b"], "events": wanted}
              for path, wanted in events.items()]  # fmt: skip
    return json.dumps(hooks)


@pytest.fixture
def receiver():
    received = WebhookReceiver()
    received.start()
    try:
        yield received
    finally:
        received.stop()


@pytest.fixture
def settings(request, backend, mysql_server, redis_server, tmp_path, receiver, smtp_sink):
    """`@pytest.mark.settings(…)` overrides; `webhooks=None` leaves them off. Mail goes
    to the test's SMTP sink (its links carry the tokens the flows need)."""
    marker = request.node.get_closest_marker("settings")
    overrides = (
        FAST
        | {"webhooks": endpoints(receiver), "smtp_url": smtp_sink.url, "public_url": PUBLIC_URL}
        | (marker.kwargs if marker else {})
    )
    if overrides["webhooks"] is None:
        del overrides["webhooks"]
    return settings_for(backend, mysql_server, redis_server, tmp_path, **overrides)


@pytest.fixture
def services(io_loop, settings):
    """The services with both delivery loops running on the test's loop."""
    opened = io_loop.run_sync(lambda: open_services(settings))
    io_loop.run_sync(lambda: empty_outbox(opened))

    async def start() -> None:
        opened.start_delivery()

    io_loop.run_sync(start)
    yield opened
    io_loop.run_sync(opened.close)
