"""Outages: with MariaDB or Redis down, the requests that need it answer
SERVICE_UNAVAILABLE within a bounded time, the rest keep working, and service comes
back by itself. The servers here are the test's own, so the shared ones stay up."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from authsvc.core.validation import normalize_email
from authsvc.services import mysql_config
from authsvc.settings import Settings
from authsvc.stores.mysql import MySQLPool
from authsvc.stores.mysql import migrate as mysql_migrate
from tests.conftest import ACCESS_SECRET, REFRESH_SECRET
from tests.e2e.processes import ThrowawayMariaDB, ThrowawayRedis
from tests.helpers import LOGIN, ME, PASSWORD, REFRESH, REGISTER, new_email

#: Generous bound for an answer during an outage (store timeout is 1 s).
ANSWER_BOUND_S = 8.0


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    server = ThrowawayMariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_instance(tmp_path):
    server = ThrowawayRedis(tmp_path)
    server.start()
    yield server
    server.thaw()
    server.stop()


@pytest.fixture
def settings(tmp_path, mariadb, redis_instance) -> Settings:
    """Overrides the suite's settings: this module's app runs on its own servers."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        node_env="test",
        db_type="mariadb",
        db_host="127.0.0.1",
        db_port=mariadb.port,
        db_username="root",
        db_name="mysql",  # exists in a fresh data directory; migrations add `users`
        redis_url=redis_instance.url,
        jwt_access_secret=ACCESS_SECRET,
        jwt_refresh_secret=REFRESH_SECRET,
        bcrypt_rounds=4,
        store_timeout_s=1.0,
        db_connect_timeout_s=1.0,
    )


async def timed(call):
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


def unavailable(body, field: str) -> bool:
    return (
        body["data"] is None
        and body["errors"][0]["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryAfter": 1}
        and body["errors"][0]["path"] == [field]
        and "Traceback" not in json.dumps(body)
    )


async def test_redis_down_then_back(client, redis_instance):
    email = new_email()
    access, refresh = await client.tokens(email)
    redis_instance.stop()

    (status, body), elapsed = await timed(client.post(REFRESH, token=refresh))
    assert status == 200 and unavailable(body, "refresh") and elapsed < ANSWER_BOUND_S
    (status, body), elapsed = await timed(
        client.post(LOGIN, {"email": email, "password": PASSWORD})
    )
    assert unavailable(body, "login") and elapsed < ANSWER_BOUND_S
    _, body = await client.post(ME, token=access)  # checks the session is alive
    assert unavailable(body, "me")
    # Forward-auth refuses (nginx turns any answer but 2xx/401/403 into a 500).
    response, elapsed = await timed(
        client.raw("GET", "/auth", headers={"Authorization": f"Bearer {access}"})
    )
    assert response.code == 503 and elapsed < ANSWER_BOUND_S
    assert response.headers["Retry-After"] == "1" and "X-Auth-User-Id" not in response.headers
    assert b"Traceback" not in response.body

    response = await client.raw("GET", "/readyz")
    body = json.loads(response.body)
    assert response.code == 503 and body["status"] == "not_ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("unavailable")
    assert (await client.raw("GET", "/healthz")).code == 200  # the process itself is fine

    redis_instance.start()  # empty: this Redis keeps nothing on disk
    _, body = await client.post(REFRESH, token=refresh)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    _, new_refresh = await client.tokens(email)
    _, body = await client.post(REFRESH, token=new_refresh)
    assert body["data"]["refresh"]


async def test_hung_redis_answers_within_the_bound(client, redis_instance):
    _, refresh = await client.tokens()
    redis_instance.freeze()
    (_status, body), elapsed = await timed(client.post(REFRESH, token=refresh))
    assert unavailable(body, "refresh") and elapsed < ANSWER_BOUND_S
    redis_instance.thaw()
    _, body = await client.post(REFRESH, token=refresh)  # the session was kept
    assert body["data"]["refresh"]


async def test_mariadb_down_then_back(client, mariadb):
    email = new_email()
    access, refresh = await client.tokens(email)
    mariadb.stop()
    try:
        (status, body), elapsed = await timed(
            client.post(LOGIN, {"email": email, "password": PASSWORD})
        )
        assert status == 200 and unavailable(body, "login") and elapsed < ANSWER_BOUND_S
        (_, body), elapsed = await timed(
            client.post(REGISTER, {"email": new_email(), "password": PASSWORD})
        )
        assert unavailable(body, "register") and elapsed < ANSWER_BOUND_S
        _, body = await client.post(ME, token=access)
        assert unavailable(body, "me")
        response = await client.raw("GET", "/readyz")
        assert response.code == 503
        assert json.loads(response.body)["checks"]["database"].startswith("unavailable")
        # A refresh needs only Redis: it keeps working while the database is down.
        _, body = await client.post(REFRESH, token=refresh)
        assert body["data"]["refresh"]
    finally:
        mariadb.start()
    # Back by itself: the pool drops its dead connections and reconnects.
    assert (await client.raw("GET", "/readyz")).code == 200
    _, body = await client.post(ME, token=access)
    assert body["data"]["me"]["email"] == email
    assert (await client.login(email))["status"] == 200


async def test_pool_recovers_every_idle_connection_after_a_restart(io_loop, mariadb, settings):
    """Idle pooled connections all die with the server; the first query after the
    restart must not fail on one of them (the pool is cleared and the query retried)."""
    pool = await MySQLPool.open(mysql_config(settings.model_copy(update={"db_pool_max": 4})))
    try:
        await mysql_migrate(pool, email_rule=normalize_email)

        async def slow_query() -> None:
            await pool.execute("SELECT SLEEP(0.2)")

        await asyncio.gather(*(slow_query() for _ in range(4)))  # four idle connections now
        mariadb.stop()
        mariadb.start()
        for _ in range(6):
            assert await pool.fetchone("SELECT 1") == (1,)
    finally:
        await pool.close()
