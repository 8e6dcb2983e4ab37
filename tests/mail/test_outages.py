"""The delivery loop through a database outage (a MariaDB of the test's own, killed and
started again): said once, never fatal, delivering again when the database returns;
and the outbox gauges."""

from __future__ import annotations

import asyncio
import logging

import pytest

from authsvc.metrics import mail_metrics
from authsvc.services import open_services
from tests.conftest import settings_for
from tests.e2e.processes import ThrowawayMariaDB
from tests.helpers import new_email
from tests.mail.conftest import FAST, eventually


@pytest.fixture
def own_mariadb(tmp_path):
    server = ThrowawayMariaDB(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.mark.parametrize("backend", ["servers"])
async def test_a_database_outage_pauses_delivery_once_and_never_ends_it(
    backend, mysql_server, redis_server, tmp_path, own_mariadb, smtp_sink, caplog
):
    import pymysql

    caplog.set_level(logging.INFO, logger="authsvc")
    with pymysql.connect(host="127.0.0.1", port=own_mariadb.port, user="root") as conn:
        conn.cursor().execute("CREATE DATABASE authsvc_outage")
    own = {"db_port": own_mariadb.port, "db_username": "root", "db_password": "",
           "db_name": "authsvc_outage", "store_timeout_s": 1.0}  # fmt: skip
    settings = settings_for(backend, mysql_server, redis_server, tmp_path,
                            **FAST | own | {"smtp_url": smtp_sink.url})  # fmt: skip
    services = await open_services(settings)
    try:
        services.start_delivery()
        before = new_email()
        await services.mailer.send("confirm_email", before, link="https://x.example/?token=1")
        await smtp_sink.next_mail(before, 10)

        own_mariadb.kill()
        await asyncio.sleep(2.0)  # ten polls or so, each failing
        paused = [r for r in caplog.records if "delivery paused" in r.getMessage()]
        assert len(paused) == 1 and paused[0].levelno == logging.WARNING

        own_mariadb.start()
        after = new_email()
        await eventually(lambda: _sent(services, after), timeout_s=20)
        await smtp_sink.next_mail(after, 10)
        await eventually(lambda: _logged(caplog, "answers again"))
        assert services.delivery is not None and services.delivery._task is not None
        assert not services.delivery._task.done()  # the same loop, never ended
    finally:
        await services.close()


async def _logged(caplog, text):
    return any(text in r.getMessage() for r in caplog.records)


async def _sent(services, to):
    """Record a mail once the database takes it (the request path would answer 503)."""
    try:
        await services.mailer.send("confirm_email", to, link="https://x.example/?token=2")
    except Exception:
        return False
    return True


@pytest.mark.parametrize("backend", ["embedded"])
async def test_the_gauges_show_the_depth_and_the_oldest_age(mail, smtp_sink):
    smtp_sink.stop()
    for _ in range(3):
        await mail.mailer.send("confirm_email", new_email(), link="https://x.example/?token=3")
    await asyncio.sleep(0.3)
    mail.start_delivery()
    gauges = mail_metrics()
    await eventually(lambda: _value(gauges.depth, 3))
    assert gauges.oldest_age._value.get() >= 0.3
    smtp_sink.start()
    await eventually(lambda: _value(gauges.depth, 0), timeout_s=15)


async def _value(gauge, expected):
    return gauge._value.get() == expected
