"""One client address holds at most HTTP_MAX_CONNECTIONS_PER_ADDRESS connections to a
worker: past it a new one is closed before a byte is read. 800 kept-alive connections
from one address, each asking again as soon as its held refusal ended, kept both event
loops busy parsing and stopped every login (the re-check of issue 11's flood fix)."""

from __future__ import annotations

import socket

from tests.e2e.processes import ServiceProcess

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: authsvc\r\n\r\n"


def answered(port: int) -> socket.socket | None:
    """A connection kept alive after one answered request, or None if it was closed."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        conn.sendall(REQUEST)
        if conn.recv(4096).startswith(b"HTTP/1.1 200"):
            return conn
    except ConnectionResetError:
        pass
    conn.close()
    return None


def kept_alive(port: int) -> socket.socket:
    conn = answered(port)
    assert conn is not None, "refused within the bound"
    return conn


def closed_at_once(port: int) -> bool:
    return answered(port) is None


def test_past_the_bound_a_new_connection_is_closed_and_a_freed_place_is_taken(tmp_path):
    env = {"BCRYPT_ROUNDS": "4", "HTTP_MAX_CONNECTIONS_PER_ADDRESS": "3", "WORKERS": "1"}
    service = ServiceProcess(tmp_path, env)
    held = []
    try:
        held = [kept_alive(service.port) for _ in range(3)]
        assert closed_at_once(service.port)
        held.pop().close()  # a place frees
        for _ in range(50):  # the worker sees the close a moment later
            conn = answered(service.port)
            if conn is not None:
                held.append(conn)
                break
        assert len(held) == 3
        assert closed_at_once(service.port)
    finally:
        for conn in held:
            conn.close()
        assert service.terminate() == 0


def test_a_trusted_proxy_is_not_bounded(tmp_path):
    env = {
        "BCRYPT_ROUNDS": "4",
        "HTTP_MAX_CONNECTIONS_PER_ADDRESS": "2",
        "TRUSTED_PROXIES": "127.0.0.1",
        "WORKERS": "1",
    }
    service = ServiceProcess(tmp_path, env)
    held = []
    try:
        held = [kept_alive(service.port) for _ in range(6)]  # nginx's upstream connections
    finally:
        for conn in held:
            conn.close()
        assert service.terminate() == 0
    assert len(held) == 6
