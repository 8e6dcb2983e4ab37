"""A Redis that answers but refuses the work (full, read-only, cut off from its master,
busy, loading) is an
outage like any other: SERVICE_UNAVAILABLE with a retry hint, a metric per cause, a
warning now and then instead of a traceback per request, and readiness 503.

Each cause is made for real on a Redis of the test's own (never the shared one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from authsvc.metrics import metrics
from tests.conftest import settings_for
from tests.e2e.processes import ThrowawayRedis, free_port
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email


@pytest.fixture
def redis_instance(tmp_path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path / "redis", "--enable-debug-command", "local")
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path, mysql_server, redis_server, redis_instance):
    """The suite's MariaDB; this module's own Redis."""
    return settings_for(
        "servers", mysql_server, redis_server, tmp_path, redis_url=redis_instance.url
    )


@pytest.fixture
def admin(redis_instance) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_instance.url) as client:
        yield client


def refused_count(cause: str) -> float:
    return metrics().store_errors.labels("redis", cause)._value.get()


async def assert_refused_as_unavailable(client, caplog, email: str, cause: str) -> None:
    before = refused_count(cause)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            status, body = await client.post(LOGIN, {"email": email, "password": PASSWORD})
            assert status == 200, body
            assert body["data"] is None, body
            [error] = body["errors"]
            assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryAfter": 1}
            assert "Traceback" not in str(body)
        ready = await client.raw("GET", "/readyz")
    assert ready.code == 503, ready.body
    assert refused_count(cause) >= before + 3
    # The access line of /readyz's 503 is an ERROR by design; nothing else may be.
    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name != "authsvc.access"
    ]
    assert not errors, caplog.text
    assert "Traceback" not in caplog.text
    # Three refused requests, at most one line (one per cause every interval).
    assert caplog.text.count("store unavailable") <= 1, caplog.text


async def assert_serving(client, email: str) -> None:
    _, body = await client.post(LOGIN, {"email": email, "password": PASSWORD})
    assert body["data"]["login"]["status"] == 200, body
    assert (await client.raw("GET", "/readyz")).code == 200


async def registered(client) -> str:
    email = new_email()
    _, body = await client.post(REGISTER, {"email": email, "password": PASSWORD})
    assert body["data"]["register"]["status"] == 201, body
    return email


async def test_a_full_redis_is_unavailable_not_an_internal_error(client, admin, caplog):
    email = await registered(client)
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    try:
        await assert_refused_as_unavailable(client, caplog, email, "out_of_memory")
    finally:
        admin.config_set("maxmemory", 0)
    await assert_serving(client, email)


async def test_a_read_only_replica_is_unavailable(client, admin, caplog, tmp_path):
    email = await registered(client)
    # A full sync at once, not after the default five seconds of waiting for more replicas.
    primary = ThrowawayRedis(tmp_path, "--repl-diskless-sync-delay", "0")
    primary.start()
    try:
        admin.replicaof("127.0.0.1", primary.port)
        deadline = time.monotonic() + 10
        while admin.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, admin.info("replication")
            time.sleep(0.05)
        await assert_refused_as_unavailable(client, caplog, email, "read_only")
    finally:
        admin.replicaof("NO", "ONE")
        primary.stop()
    email = await registered(client)  # the replica took the primary's (empty) data set
    await assert_serving(client, email)


async def test_a_replica_cut_off_from_its_master_is_unavailable(client, admin, caplog):
    """MASTERDOWN: a replica told not to serve stale data refuses reads and scripts while
    its master link is down (writes still get READONLY, which readiness meets first)."""
    email = await registered(client)
    admin.config_set("replica-serve-stale-data", "no")
    try:
        admin.replicaof("127.0.0.1", free_port())  # nothing listens there
        assert admin.info("replication")["master_link_status"] == "down"
        await assert_refused_as_unavailable(client, caplog, email, "master_down")
    finally:
        admin.replicaof("NO", "ONE")
        admin.config_set("replica-serve-stale-data", "yes")
    await assert_serving(client, email)  # it never synced: its data set is as it was


async def test_a_redis_busy_with_a_script_is_unavailable(client, admin, redis_instance, caplog):
    email = await registered(client)
    admin.config_set("busy-reply-threshold", 100)
    stuck = redis.Redis.from_url(redis_instance.url)

    def run_forever() -> None:
        with contextlib.suppress(redis.exceptions.ResponseError):  # killed below
            stuck.eval("while true do end", 0)

    runner = threading.Thread(target=run_forever)
    runner.start()
    try:
        time.sleep(0.3)
        await assert_refused_as_unavailable(client, caplog, email, "busy")
    finally:
        with redis.Redis.from_url(redis_instance.url) as killer:
            killer.script_kill()
        runner.join(10)
        stuck.close()
    await assert_serving(client, email)


async def test_a_redis_loading_its_data_is_unavailable(client, admin, redis_instance, caplog):
    email = await registered(client)
    # 2,000 keys of 1 KB each: with one key loaded every 5 ms (key-load-delay) the
    # LOADING state lasts up to ten seconds, far longer than the checks need, and every
    # key is past loading-process-events-interval-bytes, so Redis answers (LOADING)
    # between any two keys. The delay is taken away once the checks are done.
    with admin.pipeline(transaction=False) as pipe:
        for batch in range(4):
            pipe.mset({f"filler:{batch}:{i}": os.urandom(512).hex() for i in range(500)})
        pipe.execute()
    admin.save()
    redis_instance.stop()
    redis_instance.extra = (
        *redis_instance.extra,
        "--key-load-delay",
        "5000",
        "--loading-process-events-interval-bytes",
        "1024",
    )
    redis_instance.start()
    try:
        assert admin.info("persistence")["loading"] == 1
        # The first call meets the pooled connection the restart closed ("connection").
        await client.post(LOGIN, {"email": email, "password": PASSWORD})
        await assert_refused_as_unavailable(client, caplog, email, "loading")
        assert admin.info("persistence")["loading"] == 1  # the checks ran while it loaded
    finally:
        admin.config_set("key-load-delay", 0)  # CONFIG is served while loading
        deadline = time.monotonic() + 60
        while True:
            try:
                admin.ping()
                break
            except redis.exceptions.BusyLoadingError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    email = await registered(client)  # the session data was saved; new login anyway
    await assert_serving(client, email)
