"""TLS to MariaDB: a throwaway server that requires secure transport, and the DB_SSL_*
settings."""

from __future__ import annotations

import pytest

from authsvc.services import mysql_config
from authsvc.settings import Settings
from authsvc.stores.base import StoreUnavailable
from authsvc.stores.mysql import MySQLPool
from tests.e2e.certificates import make_certificates
from tests.e2e.processes import ThrowawayMariaDB


@pytest.fixture(scope="module")
def tls_mariadb(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_certificates(folder)
    server = ThrowawayMariaDB(folder)
    server.start(f"--ssl-ca={ca}", f"--ssl-cert={cert}", f"--ssl-key={key}",
                 "--require-secure-transport=ON")  # fmt: skip
    yield server, ca
    server.stop()


def settings(server, **tls) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        db_type="mariadb", db_host="127.0.0.1", db_port=server.port, db_username="root",
        db_name="mysql", store_timeout_s=3.0, db_connect_timeout_s=2.0, **tls,
    )  # fmt: skip


async def test_tls_connection_verified_against_the_ca(io_loop, tls_mariadb):
    server, ca = tls_mariadb
    pool = await MySQLPool.open(mysql_config(settings(server, db_ssl_ca=ca)))
    try:
        row = await pool.fetchone("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert row is not None and row[1]  # a cipher: the connection is encrypted
    finally:
        await pool.close()


async def test_plain_connection_is_refused_by_the_server(io_loop, tls_mariadb):
    server, _ = tls_mariadb
    with pytest.raises(StoreUnavailable):
        pool = await MySQLPool.open(mysql_config(settings(server)))
        try:
            await pool.ping()
        finally:
            await pool.close()


async def test_an_unknown_ca_is_refused(io_loop, tls_mariadb, tmp_path):
    server, _ = tls_mariadb
    other_ca, _, _ = make_certificates(tmp_path)
    with pytest.raises(StoreUnavailable):
        await MySQLPool.open(mysql_config(settings(server, db_ssl_ca=other_ca)))
