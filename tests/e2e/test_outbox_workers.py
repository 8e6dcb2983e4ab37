"""The outbox across real `authsvc serve` processes on one MariaDB database: several
of them drain it without sending a mail twice, and a process killed mid-send loses
nothing (another, or its restart, sends the mail once the lease has passed)."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request

import pytest

from authsvc.services import open_services
from tests.conftest import settings_for
from tests.e2e.processes import ServiceProcess, free_port
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import new_email
from tests.smtp_sink import SMTPSink


@pytest.fixture
def outbox_database(mysql_server, run_id):
    """A database of the test's own: its outbox is drained by this test's servers only."""
    name = f"authsvc_test_{run_id}_outbox"
    with mysql_server.connect() as conn:
        conn.cursor().execute(f"CREATE DATABASE `{name}`")
    yield name
    with mysql_server.connect() as conn:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


def mail_env(mysql_server, redis_server, database, sink, **extra: str) -> dict[str, str]:
    return (
        production_env(mysql_server, redis_server, database)
        | {
            "SMTP_URL": sink.url,
            "PUBLIC_URL": "https://auth.example.test",
            "EMAIL_FROM": "authsvc <no-reply@example.com>",
            "OUTBOX_POLL_INTERVAL_S": "0.2",
            "OUTBOX_BATCH_SIZE": "5",
            "OUTBOX_BACKOFF_BASE_S": "0.5",
            "OUTBOX_BACKOFF_MAX_S": "1",
            "SMTP_TIMEOUT_S": "1",
            "OUTBOX_LEASE_S": "3",
            "WORKERS": "1",
        }
        | extra
    )


def record(mysql_server, redis_server, tmp_path, database, addresses) -> None:
    """Record one mail to each address, as the request path does (its own process)."""
    # Its own delivery loop never starts (not `serve`): the SMTP_URL only enables mail.
    settings = settings_for("servers", mysql_server, redis_server, tmp_path, db_name=database,
                            node_env="production", smtp_url="smtp://127.0.0.1:25",
                            public_url="https://auth.example.test")  # fmt: skip

    async def enqueue() -> None:
        services = await open_services(settings)
        try:
            for to in addresses:
                await services.mailer.send("confirm_email", to,
                                           link=f"https://x.example/c?token={to}")  # fmt: skip
        finally:
            await services.close()

    asyncio.run(enqueue())


def sent_total(metrics_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.search(r'^authsvc_mail_sent_total\{kind="confirm_email"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def outbox_rows(mysql_server, database):
    with mysql_server.connect(database) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT recipient, state, attempts, message IS NULL FROM outbox")
        return cursor.fetchall()


def test_two_processes_deliver_each_of_200_mails_exactly_once(
    tmp_path, mysql_server, redis_server, outbox_database
):
    sink = SMTPSink(data_delay_s=0.02)  # 200 mails take one process 4 s at least
    sink.start()
    env = mail_env(mysql_server, redis_server, outbox_database, sink)
    migrate(tmp_path, env)
    metrics_ports = [free_port(), free_port()]
    servers = [ServiceProcess(tmp_path, env | {"METRICS_PORT": str(port)})
               for port in metrics_ports]  # fmt: skip
    try:
        addresses = [new_email() for _ in range(200)]
        record(mysql_server, redis_server, tmp_path, outbox_database, addresses)
        deadline = time.monotonic() + 60
        while len(sink.captured) < 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # a double send would come now
        received = sorted(r for capture in sink.captured for r in capture.recipients)
        assert received == sorted(addresses)
        rows = outbox_rows(mysql_server, outbox_database)
        assert len(rows) == 200
        assert all(state == "sent" and attempts == 1 and blank for _, state, attempts, blank
                   in rows)  # fmt: skip
        # Both took part (each counts what it sent), and together they sent each once.
        sent = [sent_total(port) for port in metrics_ports]
        assert sum(sent) == 200 and min(sent) > 0, sent
    finally:
        for server in servers:
            assert server.terminate() == 0
        sink.stop()
    for server in servers:
        assert "lease passed" not in server.logs()
        assert "token=" not in server.logs()  # production never logs a link


def test_a_mail_claimed_by_a_killed_process_is_sent_after_the_restart(
    tmp_path, mysql_server, redis_server, outbox_database
):
    sink = SMTPSink()
    sink.start()
    # The shortest lease SMTP_TIMEOUT_S allows (twice it): the restart waits it out.
    env = mail_env(mysql_server, redis_server, outbox_database, sink, OUTBOX_LEASE_S="2")
    migrate(tmp_path, env)
    sink.stall.set()  # the server takes the connection and then stalls at RCPT
    first = ServiceProcess(tmp_path, env)
    to = new_email()
    try:
        record(mysql_server, redis_server, tmp_path, outbox_database, [to])
        deadline = time.monotonic() + 10
        while [row[1] for row in outbox_rows(mysql_server, outbox_database)] != ["sending"]:
            assert time.monotonic() < deadline, "never claimed"
            time.sleep(0.05)
        time.sleep(0.3)
        first.stop()  # SIGKILL in the middle of the SMTP transaction
        sink.stall.clear()
        assert sink.captured == []
        second = ServiceProcess(tmp_path, env)
        try:
            sink.wait_for(to, 20)
            time.sleep(0.5)
            assert len(sink.mails_to(to)) == 1
            [(_, state, attempts, blank)] = outbox_rows(mysql_server, outbox_database)
            assert (state, attempts, blank) == ("sent", 2, 1)
        finally:
            assert second.terminate() == 0
    finally:
        first.stop()
        sink.stop()


def test_the_workers_of_one_supervisor_deliver_and_sum_their_metrics(
    tmp_path, mysql_server, redis_server, outbox_database
):
    sink = SMTPSink(data_delay_s=0.02)
    sink.start()
    metrics_port = free_port()
    env = mail_env(mysql_server, redis_server, outbox_database, sink,
                   WORKERS="2", METRICS_PORT=str(metrics_port))  # fmt: skip
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        addresses = [new_email() for _ in range(40)]
        record(mysql_server, redis_server, tmp_path, outbox_database, addresses)
        for to in addresses:
            sink.wait_for(to, 30)
        time.sleep(1.0)
        assert sorted(r for c in sink.captured for r in c.recipients) == sorted(addresses)
        assert sent_total(metrics_port) == 40  # the sum over both workers' files
    finally:
        assert service.terminate() == 0
        sink.stop()


def test_a_drain_lets_the_send_in_progress_end_and_loses_nothing(
    tmp_path, mysql_server, redis_server, outbox_database
):
    sink = SMTPSink()
    sink.start()
    env = mail_env(mysql_server, redis_server, outbox_database, sink, SHUTDOWN_TIMEOUT_S="1")
    migrate(tmp_path, env)
    sink.stall.set()
    to = new_email()
    service = ServiceProcess(tmp_path, env)
    try:
        record(mysql_server, redis_server, tmp_path, outbox_database, [to])
        deadline = time.monotonic() + 10
        while [row[1] for row in outbox_rows(mysql_server, outbox_database)] != ["sending"]:
            assert time.monotonic() < deadline, "never claimed"
            time.sleep(0.05)
        started = time.monotonic()
        assert service.terminate() == 0  # the stalled send is cut after the grace
        assert time.monotonic() - started < 8
    finally:
        service.stop()
    sink.stall.clear()
    again = ServiceProcess(tmp_path, env)
    try:
        sink.wait_for(to, 20)
        assert len(sink.mails_to(to)) == 1
    finally:
        assert again.terminate() == 0
        sink.stop()
