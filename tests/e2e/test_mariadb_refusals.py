"""A MariaDB that answers but refuses the work (read-only, a lock held past its wait) is
an outage like any other: SERVICE_UNAVAILABLE with a retry hint and a metric per cause,
never an internal error. Made for real on a MariaDB of the test's own."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pymysql
import pytest

from authsvc.core.validation import normalize_email
from authsvc.metrics import metrics
from authsvc.services import mysql_config
from authsvc.stores.base import StoreUnavailable, User
from authsvc.stores.mysql import MySQLPool, MySQLUserStore
from authsvc.stores.mysql import migrate as mysql_migrate
from tests.conftest import settings_for
from tests.e2e.processes import ThrowawayMariaDB
from tests.helpers import PASSWORD, REGISTER, new_email

APP_USER, APP_PASSWORD = "app", "app-password-0123456789"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory) -> Iterator[ThrowawayMariaDB]:
    server = ThrowawayMariaDB(tmp_path_factory.mktemp("mariadb"))
    server.start()
    with root(server) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE DATABASE authsvc")
        # Not root: read_only binds every account without READ ONLY ADMIN.
        cursor.execute(f"CREATE USER '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
        cursor.execute(f"GRANT ALL ON authsvc.* TO '{APP_USER}'@'%'")
    yield server
    server.stop()


def root(server: ThrowawayMariaDB) -> pymysql.Connection:
    return pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)


@pytest.fixture
def settings(tmp_path, mysql_server, redis_server, mariadb):
    """This module's own MariaDB, as a user without administrative rights."""
    return settings_for(
        "servers",
        mysql_server,
        redis_server,
        tmp_path,
        db_host="127.0.0.1",
        db_port=mariadb.port,
        db_username=APP_USER,
        db_password=APP_PASSWORD,
        db_name="authsvc",
    )


def refused_count(cause: str) -> float:
    return metrics().store_errors.labels("database", cause)._value.get()


async def register(client) -> dict:
    _, body = await client.post(REGISTER, {"email": new_email(), "password": PASSWORD})
    return body


def unavailable(body: dict) -> bool:
    return body["data"] is None and body["errors"][0]["extensions"] == {
        "code": "SERVICE_UNAVAILABLE",
        "retryAfter": 1,
    }


async def test_a_read_only_database_is_unavailable(client, mariadb, caplog):
    assert (await register(client))["data"]["register"]["status"] == 201
    before = refused_count("read_only")
    with root(mariadb) as conn, conn.cursor() as cursor:
        cursor.execute("SET GLOBAL read_only = 1")
        try:
            with caplog.at_level(logging.WARNING):
                body = await register(client)
        finally:
            cursor.execute("SET GLOBAL read_only = 0")
    assert unavailable(body), body
    assert refused_count("read_only") == before + 1
    assert "Traceback" not in caplog.text and "unexpected error" not in caplog.text
    assert (await register(client))["data"]["register"]["status"] == 201


async def test_a_row_locked_past_the_lock_wait_is_unavailable(io_loop, settings, mariadb):
    """The store's own answer, on a pool opened after the server's lock wait was
    shortened to a second (its sessions read it when they connect)."""
    with root(mariadb) as conn, conn.cursor() as cursor:
        cursor.execute("SET GLOBAL innodb_lock_wait_timeout = 1")
        pool = await MySQLPool.open(mysql_config(settings))
        holder = root(mariadb)
        try:
            await mysql_migrate(pool, email_rule=normalize_email)
            users = MySQLUserStore(pool)
            user = User(
                id=str(uuid.uuid4()),
                email=new_email(),
                password_hash="$2b$04$" + "x" * 53,
                confirmed=True,
                disabled=False,
                created_at=datetime.now(UTC),
                updated_at=datetime.now(UTC),
            )
            await users.create(user)
            with holder.cursor() as locking:
                locking.execute("BEGIN")
                locking.execute("SELECT id FROM authsvc.users WHERE id = %s FOR UPDATE", (user.id,))
                with pytest.raises(StoreUnavailable) as refused:
                    await users.set_disabled(user.id, True, datetime.now(UTC))
        finally:
            holder.rollback()
            holder.close()
            await pool.close()
            cursor.execute("SET GLOBAL innodb_lock_wait_timeout = 50")
    assert (refused.value.store, refused.value.cause) == ("database", "lock_wait_timeout")
