"""A service started while a store is down starts anyway (issue 12): it listens,
answers SERVICE_UNAVAILABLE and /readyz 503, and serves once the store is there. The
database's schema is checked when it returns, before anything else reaches it:
production waits for `authsvc migrate` (saying so), development migrates by itself.

A database behind this release while reachable at start still fails the start at once
(test_serve.py): that is a deployment error, not an outage.

Servers here are the test's own (a throwaway MariaDB and Redis), never the shared ones."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pymysql
import pytest

from tests.conftest import ACCESS_SECRET, REFRESH_SECRET
from tests.e2e.processes import (
    ServiceProcess,
    ThrowawayMariaDB,
    ThrowawayRedis,
    authsvc_command,
    child_env,
)
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email

DATABASE = "authsvc_boot"


@pytest.fixture
def mariadb(tmp_path) -> Iterator[ThrowawayMariaDB]:
    server = ThrowawayMariaDB(tmp_path)  # installed, not started
    yield server
    server.stop()


@pytest.fixture
def redis_instance(tmp_path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path)  # not started
    yield server
    server.stop()


def env_for(mariadb: ThrowawayMariaDB, redis: ThrowawayRedis, production: bool) -> dict[str, str]:
    env = {
        "DB_TYPE": "mariadb",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(mariadb.port),
        "DB_USERNAME": "root",
        "DB_NAME": DATABASE,
        "REDIS_URL": redis.url,
        "BCRYPT_ROUNDS": "4",
        "STORE_TIMEOUT_S": "1",
        "DB_CONNECT_TIMEOUT_S": "1",
        "LOG_LEVEL": "INFO",
    }
    if production:
        env |= {
            "NODE_ENV": "production",
            "WORKERS": "2",
            "JWT_ACCESS_SECRET": ACCESS_SECRET,
            "JWT_REFRESH_SECRET": REFRESH_SECRET,
        }
    return env


def readiness(service: ServiceProcess) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{service.port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def register(service: ServiceProcess) -> tuple[str, dict]:
    """(the email, the register answer: its payload or its errors)."""
    email = new_email()
    _, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
    return email, body


def unavailable(body: dict) -> bool:
    return [e["extensions"]["code"] for e in body.get("errors", [])] == ["SERVICE_UNAVAILABLE"]


def registered_within(service: ServiceProcess, seconds: float) -> str:
    """Register until one succeeds (SERVICE_UNAVAILABLE before); its email."""
    deadline = time.monotonic() + seconds
    while True:
        email, body = register(service)
        if "errors" not in body:
            assert body["data"]["register"]["status"] == 201, body
            return email
        assert unavailable(body), body
        assert time.monotonic() < deadline, f"still refused after {seconds} s: {body}"
        time.sleep(0.1)


def served_within(service: ServiceProcess, seconds: float) -> None:
    """A registration succeeds within ``seconds``, then its login, and /readyz is 200."""
    email = registered_within(service, seconds)
    _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
    assert body["data"]["login"]["status"] == 200, body
    assert readiness(service)[0] == 200


def create_database(mariadb: ThrowawayMariaDB) -> None:
    with pymysql.connect(host="127.0.0.1", port=mariadb.port, user="root") as conn:
        conn.cursor().execute(f"CREATE DATABASE {DATABASE}")


def test_production_starts_while_the_database_is_down_and_waits_for_its_schema(
    tmp_path, mariadb, redis_instance
):
    redis_instance.start()
    env = env_for(mariadb, redis_instance, production=True)
    service = ServiceProcess(tmp_path, env)  # returns once the port is listening
    try:
        status, ready = readiness(service)
        assert status == 503 and ready["checks"]["database"].startswith("unavailable")
        assert "Can't connect" in ready["checks"]["database"], ready  # the driver's reason
        assert ready["checks"]["redis"] == "ok"
        assert unavailable(register(service)[1])

        mariadb.start()
        create_database(mariadb)  # there, but never migrated: not this release's schema
        time.sleep(0.5)
        _, body = register(service)
        assert unavailable(body), body
        status, ready = readiness(service)
        assert status == 503 and "authsvc migrate" in ready["checks"]["database"], ready

        migrate = subprocess.run(
            authsvc_command("migrate"), env=child_env(env), capture_output=True, timeout=60
        )
        assert migrate.returncode == 0, migrate.stderr
        served_within(service, 1.0)
    finally:
        code = service.terminate()
    logs = service.logs()
    assert code == 0, logs[-3000:]
    assert "starting without the database" in logs and "Traceback" not in logs


def test_development_starts_while_the_database_is_down_and_migrates_when_it_returns(
    tmp_path, mariadb, redis_instance
):
    redis_instance.start()
    service = ServiceProcess(tmp_path, env_for(mariadb, redis_instance, production=False))
    try:
        assert unavailable(register(service)[1])
        mariadb.start()
        create_database(mariadb)
        registered_within(service, 2.0)  # the first call migrated the empty database
        assert readiness(service)[0] == 200
    finally:
        code = service.terminate()
    logs = service.logs()
    assert code == 0, logs[-3000:]
    assert "applied migration 0001_users" in logs


def test_production_starts_while_redis_is_down(tmp_path, mariadb, redis_instance):
    mariadb.start()
    create_database(mariadb)
    env = env_for(mariadb, redis_instance, production=True)
    migrate = subprocess.run(
        authsvc_command("migrate"), env=child_env(env), capture_output=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stderr
    service = ServiceProcess(tmp_path, env)
    try:
        status, ready = readiness(service)
        assert status == 503 and ready["checks"]["redis"].startswith("unavailable")
        assert ready["checks"]["database"] == "ok"
        assert unavailable(register(service)[1])  # its rate limit is counted in Redis
        redis_instance.start()
        served_within(service, 1.0)
    finally:
        code = service.terminate()
    assert code == 0, service.logs()[-3000:]
