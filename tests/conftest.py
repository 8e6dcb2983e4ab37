"""Shared fixtures: real MariaDB and Redis (a throwaway database and key prefix each
run), the embedded SQLite store, and the Tornado app built as the CLI builds it.

A missing server fails loudly; nothing here is mocked or skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pymysql
import pytest
import redis

from authsvc.app import make_app
from authsvc.services import Services, open_services
from authsvc.settings import Settings
from tests.helpers import GraphQLClient

DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "mysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

ACCESS_SECRET = "test-access-secret-0123456789abcdef0123456789"
REFRESH_SECRET = "test-refresh-secret-0123456789abcdef012345678"

#: Names everything this run creates on the shared servers (its database, its key prefix,
#: the bench smoke run's database and keys), so that what it leaves behind can be found.
RUN_ID = uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class MySQLServer:
    host: str
    port: int
    user: str
    password: str
    database: str

    def connect(self, database: str | None = None) -> pymysql.Connection:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            autocommit=True,
            connect_timeout=5,
        )


@dataclass(frozen=True)
class RedisServer:
    url: str
    prefix: str


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MySQLServer]:
    """A throwaway database on the MariaDB of TEST_DATABASE_URL, dropped at the end."""
    url = urlparse(DATABASE_URL)
    server = MySQLServer(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        database=f"authsvc_test_{RUN_ID}",
    )
    try:
        conn = server.connect()
    except pymysql.err.OperationalError as exc:
        pytest.fail(f"MariaDB/MySQL at {DATABASE_URL} is required for the tests: {exc}")
    with conn:
        conn.cursor().execute(f"CREATE DATABASE `{server.database}`")
    try:
        yield server
    finally:
        with server.connect() as conn:
            cursor = conn.cursor()
            cursor.execute(f"DROP DATABASE IF EXISTS `{server.database}`")
            cursor.execute("SHOW DATABASES LIKE %s", (f"%{RUN_ID}%",))
            left = [row[0] for row in cursor.fetchall()]
            for name in left:
                cursor.execute(f"DROP DATABASE `{name}`")
        if left:
            pytest.fail(f"the tests left databases behind (now dropped): {left}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The Redis of TEST_REDIS_URL with a key prefix of this run; its keys are deleted."""
    server = RedisServer(url=REDIS_URL, prefix=f"authsvc-test-{RUN_ID}:")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is required for the tests: {exc}")
    try:
        yield server
    finally:
        keys = list(client.scan_iter(match=server.prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        # Anything else named after this run came from outside the prefix (a subprocess
        # with a namespace of its own, such as the bench) and was not cleaned up.
        left = list(client.scan_iter(match=f"*{RUN_ID}*", count=1000))
        if left:
            client.delete(*left)
        client.close()
        if left:
            pytest.fail(
                f"the tests left {len(left)} Redis keys behind (now deleted), e.g. {left[0]!r}"
            )


@pytest.fixture(scope="session")
def run_id() -> str:
    """What names this run's databases and keys (RUN_ID): a subprocess that makes its
    own takes it into their names, so that a leak of its is found."""
    return RUN_ID


def settings_for(
    backend: str,
    mysql_server: MySQLServer,
    redis_server: RedisServer,
    tmp_path: Path,
    **overrides: Any,
) -> Settings:
    """Settings as a deployment would have them, pointed at the test servers (backend
    "servers") or at an embedded SQLite file in ``tmp_path`` ("embedded")."""
    values: dict[str, Any] = {
        "node_env": "test",
        "bcrypt_rounds": 4,  # the cost itself is the subject of no test here
        # Races of 20 registrations must meet the unique index, not the busy bound
        # (tested on its own).
        "hash_queue_max_wait_s": 30.0,
        "jwt_access_secret": ACCESS_SECRET,
        "jwt_refresh_secret": REFRESH_SECRET,
        "sqlite_path": str(tmp_path / "authsvc.sqlite3"),
        "jwt_keys_dir": str(tmp_path / "keys"),
        "store_timeout_s": 3.0,
    }
    if backend == "servers":
        values |= {
            "db_type": "mariadb",
            "db_host": mysql_server.host,
            "db_port": mysql_server.port,
            "db_username": mysql_server.user,
            "db_password": mysql_server.password,
            "db_name": mysql_server.database,
            "redis_url": redis_server.url,
            # A namespace per test: rate-limit counters of one test never reach another.
            "redis_key_prefix": f"{redis_server.prefix}{uuid.uuid4().hex[:8]}:",
        }
    else:
        assert backend == "embedded", backend
    values |= overrides
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(params=["servers", "embedded"])
def backend(request: pytest.FixtureRequest) -> str:
    """MariaDB + Redis, then the embedded SQLite default: every API test runs on both."""
    return str(request.param)


@pytest.fixture
def settings(request, backend, mysql_server, redis_server, tmp_path) -> Settings:
    """`@pytest.mark.settings(name=value, …)` on a test overrides settings for it."""
    marker = request.node.get_closest_marker("settings")
    overrides = marker.kwargs if marker else {}
    return settings_for(backend, mysql_server, redis_server, tmp_path, **overrides)


@pytest.fixture
def services(io_loop, settings) -> Iterator[Services]:
    opened = io_loop.run_sync(lambda: open_services(settings))
    yield opened
    io_loop.run_sync(opened.close)


@pytest.fixture
def app(settings, services):
    return make_app(settings, services)


@pytest.fixture
def client(app, http_server_client) -> GraphQLClient:
    # `app` is named here, not only looked up by pytest-tornasync's http_server, so that
    # pytest sees the `backend` parameters at collection.
    return GraphQLClient(http_server_client)


@pytest.fixture
def smtp_sink() -> Iterator[Any]:
    """A real SMTP server on a free loopback port, capturing every mail (tests/smtp_sink.py):
    point SMTP_URL at ``smtp_sink.url`` and read mail with ``smtp_sink.wait_for(address)``."""
    from tests.smtp_sink import SMTPSink

    sink = SMTPSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
