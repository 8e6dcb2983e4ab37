"""Mail fixtures: the services of both backends with SMTP_URL pointed at the test's SMTP
sink, short waits, and an outbox emptied before each test (MariaDB's is shared by the
run's tests)."""

from __future__ import annotations

import asyncio
import time

import pytest

from authsvc.services import open_services
from tests.conftest import settings_for

#: Waits short enough for a test, long enough to be waits.
FAST = {
    "outbox_poll_interval_s": 0.2,
    "outbox_backoff_base_s": 0.2,
    "outbox_backoff_max_s": 0.5,
    "outbox_max_attempts": 50,
    "smtp_timeout_s": 2.0,
    "outbox_lease_s": 5.0,
    "email_from": "authsvc <no-reply@example.com>",
}


@pytest.fixture
def mail_settings(request, backend, mysql_server, redis_server, tmp_path, smtp_sink):
    """`@pytest.mark.settings(…)` overrides; `smtp_url=None` sends to the log."""
    marker = request.node.get_closest_marker("settings")
    overrides = FAST | {"smtp_url": smtp_sink.url} | (marker.kwargs if marker else {})
    return settings_for(backend, mysql_server, redis_server, tmp_path, **overrides)


@pytest.fixture
def mail(io_loop, mail_settings):
    """The services, delivery loop not started (a test starts it: start_delivery())."""
    services = io_loop.run_sync(lambda: open_services(mail_settings))
    io_loop.run_sync(lambda: empty_outbox(services))
    yield services
    io_loop.run_sync(services.close)


async def empty_outbox(services) -> None:
    async with services.users_db.transaction() as tx:
        await tx.execute("DELETE FROM outbox")


async def eventually(check, timeout_s: float = 10.0, every_s: float = 0.05):
    """Await ``check()`` until it returns something truthy; AssertionError after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not so within {timeout_s} s: {result!r}")
        await asyncio.sleep(every_s)
