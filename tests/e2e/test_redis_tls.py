"""rediss:// (TLS) to a throwaway redis-server that speaks TLS only."""

from __future__ import annotations

import subprocess

import pytest

from authsvc.stores.base import StoreUnavailable
from authsvc.stores.redis import RedisSessionStore
from tests.e2e.certificates import make_certificates
from tests.e2e.processes import free_port, wait_for_port
from tests.stores.test_session_store_contract import make_session


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    folder = tmp_path_factory.mktemp("redis-tls")
    ca, cert, key = make_certificates(folder)
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca,
         "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, 10, process)
    yield port, ca
    process.terminate()
    process.wait(10)


async def test_sessions_over_tls(io_loop, tls_redis):
    port, ca = tls_redis
    store = RedisSessionStore.from_url(
        f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}", key_prefix="tls:", timeout_s=3.0
    )
    try:
        session = make_session()
        await store.create(session)
        assert await store.get(session.user_id, session.id) == session
    finally:
        await store.close()


async def test_plain_redis_url_to_a_tls_port_is_unavailable(io_loop, tls_redis):
    port, _ = tls_redis
    store = RedisSessionStore.from_url(
        f"redis://127.0.0.1:{port}/0", key_prefix="x:", timeout_s=1.0
    )
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
    finally:
        await store.close()
