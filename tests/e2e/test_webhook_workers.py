"""Webhooks across a real `authsvc serve` process killed mid-delivery: the event its
request recorded is delivered by the restarted process once the lease has passed, with
the same webhook-id (at least once, deduplicable), signed as the reference library
verifies, and no secret in the logs."""

from __future__ import annotations

import json
import time

from standardwebhooks import Webhook

from tests.e2e.processes import ServiceProcess
from tests.e2e.test_outbox_workers import outbox_database, outbox_rows  # noqa: F401 - a fixture
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import PASSWORD, REGISTER, new_email
from tests.webhook_receiver import STALL, WebhookReceiver
from tests.webhooks.conftest import new_secret


def wait_until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def test_an_event_claimed_by_a_killed_process_arrives_after_the_restart(
    tmp_path,
    mysql_server,
    redis_server,
    outbox_database,  # noqa: F811
):
    receiver = WebhookReceiver()
    receiver.start()
    secret = new_secret()
    env = production_env(mysql_server, redis_server, outbox_database) | {
        "WEBHOOKS": json.dumps([{"url": receiver.url("/in"), "secrets": [secret]}]),
        "OUTBOX_POLL_INTERVAL_S": "0.2",
        "OUTBOX_BACKOFF_BASE_S": "0.5",
        "OUTBOX_BACKOFF_MAX_S": "1",
        "WEBHOOK_TIMEOUT_S": "1",
        "SMTP_TIMEOUT_S": "1",
        # The shortest lease the timeouts allow (twice each): the restart waits it out.
        "OUTBOX_LEASE_S": "2",
        "WORKERS": "1",
    }
    migrate(tmp_path, env)
    receiver.always["/in"] = STALL  # the request arrives, and no answer comes
    first = ServiceProcess(tmp_path, env)
    try:
        status, body = first.graphql(REGISTER, {"email": new_email(), "password": PASSWORD})
        assert status == 200 and body["data"]["register"]["status"] == 201, body
        wait_until(lambda: receiver.to("/in"), 10, "the event never left")
        first.stop()  # SIGKILL while the delivery waits for its answer
        del receiver.always["/in"]
        [(_, state, attempts, _)] = outbox_rows(mysql_server, outbox_database)
        assert (state, attempts) == ("sending", 1)  # claimed by the dead process
        second = ServiceProcess(tmp_path, env)
        try:
            wait_until(lambda: len(receiver.to("/in")) == 2, 15, "not delivered after restart")
            lost, delivered = receiver.to("/in")
            assert lost.headers["webhook-id"] == delivered.headers["webhook-id"]
            assert delivered.event["type"] == "user.registered"
            Webhook(secret).verify(delivered.body, delivered.headers)
            wait_until(lambda: outbox_rows(mysql_server, outbox_database)[0][1] == "sent", 5,
                       "not marked sent")  # fmt: skip
            assert outbox_rows(mysql_server, outbox_database)[0][2] == 2
        finally:
            assert second.terminate() == 0
        assert secret[6:] not in first.logs() + second.logs()
    finally:
        first.stop()
        receiver.stop()
