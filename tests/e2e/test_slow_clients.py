"""Slow and silent clients against the real `authsvc serve` over raw sockets: headers
that never end, a body shorter than its Content-Length and an idle connection are
closed after HTTP_HEADER_TIMEOUT_S, HTTP_BODY_TIMEOUT_S and HTTP_IDLE_TIMEOUT_S, while
a kept-alive connection may idle longer than the header timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.e2e.processes import ServiceProcess

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
#: Above HEADER_TIMEOUT_S by more than the idle test's pause, with room to spare.
IDLE_TIMEOUT_S = 3.0
#: Generous: the CPU is shared, and the point is "closed", not "closed to the ms".
SLACK_S = 2.0

QUERY = b'{"query":"{ __typename }"}'
COMPLETE = (
    b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(QUERY)).encode() + b"\r\n\r\n" + QUERY
)


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[ServiceProcess]:
    env = {
        "BCRYPT_ROUNDS": "4",
        "HTTP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "HTTP_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "HTTP_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S),
    }
    process = ServiceProcess(tmp_path_factory.mktemp("slow-clients"), env)
    yield process
    assert process.terminate() == 0


def connect(service: ServiceProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", service.port))
    sock.settimeout(30)  # far beyond every server timeout: the server must act first
    return sock


def seconds_until_closed(sock: socket.socket) -> tuple[float, bytes]:
    """Read until the server closes the connection; (seconds it took, what it sent)."""
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:  # closed with bytes of ours unread: a reset, not a FIN
        pass
    return time.monotonic() - started, received


def answer(sock: socket.socket) -> bytes:
    """One response to COMPLETE (the body is a few bytes: one read after the headers)."""
    data = b""
    while b'"Query"' not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_unfinished_headers_are_closed_after_the_header_timeout(service):
    with connect(service) as sock:
        sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Le")
        took, received = seconds_until_closed(sock)
    assert HEADER_TIMEOUT_S - 0.2 <= took <= HEADER_TIMEOUT_S + SLACK_S
    assert received == b""  # nothing was asked yet: nothing to answer


def test_headers_sent_a_byte_at_a_time_are_closed_all_the_same(service):
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    started = time.monotonic()
    with connect(service) as sock:
        try:
            for byte in request:  # each byte well within the timeout of the one before
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass
        took, _ = seconds_until_closed(sock)
    assert time.monotonic() - started <= HEADER_TIMEOUT_S + SLACK_S, took


def test_a_silent_connection_is_closed_after_the_header_timeout(service):
    with connect(service) as sock:
        took, received = seconds_until_closed(sock)
    assert HEADER_TIMEOUT_S - 0.2 <= took <= HEADER_TIMEOUT_S + SLACK_S
    assert received == b""


def test_a_body_short_of_its_content_length_is_closed_after_the_body_timeout(service):
    with connect(service) as sock:
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"query":'
        )
        took, received = seconds_until_closed(sock)
    assert BODY_TIMEOUT_S - 0.2 <= took <= BODY_TIMEOUT_S + SLACK_S
    assert received == b""  # the request was never complete: it was not executed


def test_a_kept_alive_connection_idles_longer_than_the_header_timeout(service):
    with connect(service) as sock:
        sock.sendall(COMPLETE)
        assert answer(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(HEADER_TIMEOUT_S + 0.5)  # past the first request's deadline: still open
        sock.sendall(COMPLETE)
        assert answer(sock).startswith(b"HTTP/1.1 200 ")
        took, received = seconds_until_closed(sock)
    assert IDLE_TIMEOUT_S - 0.2 <= took <= IDLE_TIMEOUT_S + SLACK_S
    assert received == b""


def test_the_service_still_answers_after_the_slow_clients(service):
    status, body = service.graphql("{ __typename }")
    assert status == 200 and body == {"data": {"__typename": "Query"}}
