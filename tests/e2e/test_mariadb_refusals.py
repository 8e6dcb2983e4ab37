"""A MariaDB that answers but refuses the work (read-only, a lock held past its wait, a
deadlock, no connection left) is an outage like any other: SERVICE_UNAVAILABLE with a
retry hint and a metric per cause, never an internal error. Made for real on a MariaDB
of the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
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


def app_connection(server: ThrowawayMariaDB) -> pymysql.Connection:
    """A connection as the service's user, to its database."""
    return pymysql.connect(
        host="127.0.0.1",
        port=server.port,
        user=APP_USER,
        password=APP_PASSWORD,
        database="authsvc",
        autocommit=True,
    )


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


def insert_user(conn: pymysql.Connection, email: str) -> None:
    with conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO users (id, email, password_hash, confirmed, disabled, created_at,"
            " updated_at) VALUES (%s, %s, %s, 1, 0, UTC_TIMESTAMP(), UTC_TIMESTAMP())",
            (str(uuid.uuid4()), email, "$2b$04$" + "x" * 53),
        )


async def until_inserts_wait(watcher: pymysql.Connection, count: int) -> None:
    """Until ``count`` INSERTs into users wait for a lock (bounded)."""
    deadline = time.monotonic() + 10
    while True:
        with watcher.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.processlist"
                " WHERE info LIKE 'INSERT INTO users%%' AND state = 'Update'"
            )
            (waiting,) = cursor.fetchone()
        if waiting >= count:
            return
        assert time.monotonic() < deadline, f"{waiting} of {count} INSERTs wait"
        await asyncio.sleep(0.02)


async def test_a_deadlock_the_service_loses_is_unavailable(client, mariadb, caplog):
    """1213: the service's INSERT of a registration and another transaction's both wait
    for the same email, held by a third that rolls back; each then waits for the
    other's gap lock. InnoDB rolls back the lighter one: the service's single INSERT,
    since the other transaction has written a hundred rows first."""
    email = new_email()
    holder, rival, watcher = app_connection(mariadb), app_connection(mariadb), root(mariadb)
    rival_outcome: list[str] = []

    def rival_inserts() -> None:
        try:
            insert_user(rival, email)
            rival_outcome.append("inserted")
        except pymysql.err.MySQLError as exc:
            rival_outcome.append(repr(exc))

    def drop_ballast() -> None:
        with watcher.cursor() as cursor:
            cursor.execute("DROP TABLE authsvc.ballast")

    before = refused_count("deadlock")
    with contextlib.ExitStack() as closing:  # on exit: join, close (ends both), drop
        closing.callback(watcher.close)
        with rival.cursor() as cursor:
            cursor.execute("CREATE TABLE ballast (n INT PRIMARY KEY)")
        closing.callback(drop_ballast)
        closing.callback(holder.close)
        closing.callback(rival.close)
        holder.begin()
        insert_user(holder, email)
        registering = asyncio.ensure_future(
            client.post(REGISTER, {"email": email, "password": PASSWORD})
        )
        await until_inserts_wait(watcher, 1)
        rival.begin()
        with rival.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 10")
            cursor.executemany("INSERT INTO ballast VALUES (%s)", [(n,) for n in range(100)])
        thread = threading.Thread(target=rival_inserts)
        thread.start()
        closing.callback(thread.join, 15)
        await until_inserts_wait(watcher, 2)
        with caplog.at_level(logging.WARNING):
            holder.rollback()
            _, body = await registering
        thread.join(15)
        rival.rollback()
    assert rival_outcome == ["inserted"], rival_outcome
    assert unavailable(body), body
    assert refused_count("deadlock") == before + 1
    assert "Traceback" not in caplog.text and "unexpected error" not in caplog.text
    _, body = await client.post(REGISTER, {"email": email, "password": PASSWORD})
    assert body["data"]["register"]["status"] == 201, body


@contextlib.contextmanager
def every_connection_taken(server: ThrowawayMariaDB) -> Iterator[None]:
    """The server's connections all taken by the test (as the service's user, which has
    no claim on the one MariaDB keeps for SUPER), the service's own closed first; all
    given back on exit."""
    with root(server) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT @@max_connections")
        (usual,) = cursor.fetchone()
        cursor.execute("SET GLOBAL max_connections = 10")  # the least MariaDB takes
        taken: list[pymysql.Connection] = []
        try:
            cursor.execute(
                "SELECT id FROM information_schema.processlist WHERE user = %s", (APP_USER,)
            )
            for (connection_id,) in cursor.fetchall():
                cursor.execute(f"KILL CONNECTION {int(connection_id)}")
            while True:
                assert len(taken) < 20, "max_connections did not bind"
                try:
                    taken.append(app_connection(server))
                except pymysql.err.OperationalError as exc:
                    assert exc.args[0] == 1040, exc  # ER_CON_COUNT_ERROR: too many
                    break
            yield
        finally:
            for conn in taken:
                conn.close()
            cursor.execute(f"SET GLOBAL max_connections = {int(usual)}")


async def test_a_database_with_no_connection_left_is_unavailable(client, mariadb, caplog):
    """1040: the service's pooled connections are gone (a restart, wait_timeout) and
    the server has no new one to give; once it has, the service serves at once."""
    assert (await register(client))["data"]["register"]["status"] == 201
    before = refused_count("too_many_connections")
    with every_connection_taken(mariadb), caplog.at_level(logging.WARNING):
        body = await register(client)
        ready = await client.raw("GET", "/readyz")
    assert unavailable(body), body
    assert ready.code == 503, ready.body
    assert refused_count("too_many_connections") >= before + 1
    assert "Traceback" not in caplog.text and "unexpected error" not in caplog.text
    assert (await register(client))["data"]["register"]["status"] == 201
    assert (await client.raw("GET", "/readyz")).code == 200


async def test_a_pool_opened_with_no_connection_left_says_why(io_loop, settings, mariadb):
    """A worker that starts while the server is full: the pool's first connection is
    refused with too_many_connections, not "connection"."""
    with every_connection_taken(mariadb), pytest.raises(StoreUnavailable) as refused:
        await MySQLPool.open(mysql_config(settings))
    assert (refused.value.store, refused.value.cause) == ("database", "too_many_connections")
