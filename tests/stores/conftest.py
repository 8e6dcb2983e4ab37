"""Store fixtures: each protocol's contract suite runs against every adapter."""

from __future__ import annotations

import pytest

from authsvc.services import mysql_config
from authsvc.stores import mysql, sqlite
from authsvc.stores.redis import RedisSessionStore
from tests.conftest import settings_for
from tests.helpers import open_migrated_sqlite


@pytest.fixture(params=["mysql", "sqlite"])
def user_store(request, io_loop, mysql_server, redis_server, tmp_path):
    if request.param == "mysql":
        settings = settings_for("servers", mysql_server, redis_server, tmp_path)
        pool = io_loop.run_sync(lambda: mysql.MySQLPool.open(mysql_config(settings)))
        io_loop.run_sync(lambda: mysql.migrate(pool))
        yield mysql.MySQLUserStore(pool)
        io_loop.run_sync(pool.close)
    else:
        db = open_migrated_sqlite(io_loop, tmp_path / "u.db")
        yield sqlite.SQLiteUserStore(db)
        io_loop.run_sync(db.close)


@pytest.fixture(params=["redis", "sqlite"])
def session_store(request, io_loop, redis_server, tmp_path):
    if request.param == "redis":
        store = RedisSessionStore.from_url(
            redis_server.url, key_prefix=redis_server.prefix, timeout_s=3.0
        )
        yield store
        io_loop.run_sync(store.close)
    else:
        db = open_migrated_sqlite(io_loop, tmp_path / "s.db")
        yield sqlite.SQLiteSessionStore(db)
        io_loop.run_sync(db.close)
