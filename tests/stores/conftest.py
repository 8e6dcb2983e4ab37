"""Store fixtures: each protocol's contract suite runs against every adapter."""

from __future__ import annotations

import uuid

import pytest

from authsvc.core.validation import normalize_email
from authsvc.services import mysql_config
from authsvc.stores import mysql, sqlite
from authsvc.stores.redis import RedisConfig, RedisCounterStore, RedisSessionStore, open_client
from authsvc.stores.redis import close as close_redis
from tests.conftest import settings_for
from tests.helpers import open_migrated_sqlite
from tests.stores.redis_topologies import Cluster, SentinelSetup


@pytest.fixture(params=["mysql", "sqlite"])
def user_store(request, io_loop, mysql_server, redis_server, tmp_path):
    if request.param == "mysql":
        settings = settings_for("servers", mysql_server, redis_server, tmp_path)
        pool = io_loop.run_sync(lambda: mysql.MySQLPool.open(mysql_config(settings)))
        io_loop.run_sync(lambda: mysql.migrate(pool, email_rule=normalize_email))
        yield mysql.MySQLUserStore(pool)
        io_loop.run_sync(pool.close)
    else:
        db = open_migrated_sqlite(io_loop, tmp_path / "u.db")
        yield sqlite.SQLiteUserStore(db)
        io_loop.run_sync(db.close)


REDIS_KINDS = ["redis", "redis-cluster", "redis-sentinel", "sqlite"]


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory):
    setup = SentinelSetup(tmp_path_factory.mktemp("redis-sentinel"))
    yield setup
    setup.stop()


def redis_client_for(request, io_loop, redis_server):
    """A client for the kind of Redis the test is parametrized with (the topologies
    start on first use)."""
    kind = request.param
    if kind == "redis-cluster":
        cluster = request.getfixturevalue("redis_cluster")
        config = RedisConfig(cluster.url, 3.0, cluster=True)
    elif kind == "redis-sentinel":
        setup = request.getfixturevalue("redis_sentinel")
        config = RedisConfig("redis://localhost/0", 3.0,
                             sentinels=(("127.0.0.1", setup.sentinel_port),),
                             sentinel_master=setup.MASTER)  # fmt: skip
    else:
        config = RedisConfig(redis_server.url, 3.0)
    return io_loop.run_sync(lambda: open_client(config))


@pytest.fixture(params=REDIS_KINDS)
def session_store(request, io_loop, redis_server, tmp_path):
    if request.param.startswith("redis"):
        client = redis_client_for(request, io_loop, redis_server)
        prefix = f"{redis_server.prefix}{uuid.uuid4().hex[:8]}:"
        store = RedisSessionStore(client, key_prefix=prefix, timeout_s=3.0)
        yield store
        io_loop.run_sync(store.close)
    else:
        db = open_migrated_sqlite(io_loop, tmp_path / "s.db")
        yield sqlite.SQLiteSessionStore(db)
        io_loop.run_sync(db.close)


@pytest.fixture(params=REDIS_KINDS)
def counter_store(request, io_loop, redis_server, tmp_path):
    if request.param.startswith("redis"):
        client = redis_client_for(request, io_loop, redis_server)
        prefix = f"{redis_server.prefix}{uuid.uuid4().hex[:8]}:"
        yield RedisCounterStore(client, key_prefix=prefix, timeout_s=3.0)
        io_loop.run_sync(lambda: close_redis(client))
    else:
        db = open_migrated_sqlite(io_loop, tmp_path / "c.db")
        yield sqlite.SQLiteCounterStore(db)
        io_loop.run_sync(db.close)
