"""Clients that ignore Retry-After, against the real server process over HTTP: their
refusals are held (or their connection closed), logins beside them still complete, and
refresh and `me` are never held. The answers keep the shapes old clients know."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid

from tests.e2e.processes import ServiceProcess
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import LOGIN, ME, PASSWORD, REFRESH, REGISTER, new_email


class KeepAlive:
    """One HTTP/1.1 connection kept open, as wrk and most client libraries keep it:
    the server can tell that the same client asks again."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        # Another loopback address (127.0.0.2) is another client to the server.
        self.sock = socket.create_connection(("127.0.0.1", port), 15, (source, 0))
        self.buffer = b""

    def post(self, query: str, variables: dict | None = None, token: str | None = None):
        """(seconds taken, headers with lower-case names, body)."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\n{auth}\r\n")  # fmt: skip
        started = time.monotonic()
        self.sock.sendall(head.encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        raw_head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 200"), lines[0]
        headers = {k.strip().lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._read()
        answer, self.buffer = self.buffer[:length], self.buffer[length:]
        return time.monotonic() - started, headers, json.loads(answer)

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buffer += chunk

    def closed_by_server(self) -> bool:
        self.sock.settimeout(3)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def credentials(email: str) -> dict[str, str]:
    return {"email": email, "password": PASSWORD}


def serve(tmp_path, mysql_server, redis_server, settings: dict[str, str]):
    """A production server with ``settings``, and the email of an account on it. Its
    own key prefix (under the run's, removed at the end): the limits per address count
    127.0.0.1, which every test shares."""
    prefix = f"{redis_server.prefix}{uuid.uuid4().hex[:8]}:"
    env = production_env(mysql_server, redis_server) | {"REDIS_KEY_PREFIX": prefix} | settings
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    email = new_email()
    _, body = service.graphql(REGISTER, credentials(email))
    if body["data"]["register"]["status"] != 201:
        service.stop()
        raise AssertionError(body)
    return service, email


def test_a_client_that_ignores_429_is_held_then_closed_and_refresh_is_not_held(
    tmp_path, mysql_server, redis_server
):
    service, email = serve(tmp_path, mysql_server, redis_server, {
        "WORKERS": "1", "RATE_LIMIT_LOGIN_PER_IP": "1/60",
        "RATE_LIMIT_REFRESH_PER_SESSION": "1/60",
        "REFUSAL_HOLD_MAX_S": "1", "REFUSALS_IGNORED_MAX": "4",
    })  # fmt: skip
    flooder = None
    try:
        flooder = KeepAlive(service.port)
        took, headers, body = flooder.post(LOGIN, credentials(email))
        assert body["data"]["login"]["status"] == 200  # the one login a minute allowed
        tokens = json.loads(body["data"]["login"]["payload"])

        # At once again, then again and again, as a loop that ignores Retry-After does.
        # The first comes a moment after its login (too soon): held for that second.
        took, headers, body = flooder.post(LOGIN, credentials(email))
        assert took >= 0.7, took
        login = body["data"]["login"]
        retry_after = int(headers["retry-after"])
        assert 50 <= retry_after <= 60 and login["payload"] is None
        assert login == {
            "status": 429,
            "payload": None,
            "errors": [
                {"path": "email", "message": f"too many attempts, retry in {retry_after} seconds"}
            ],
        }

        # refresh and me on that same connection are answered at once, a refused
        # refresh too, in the shape old clients know.
        took, headers, body = flooder.post(REFRESH, token=tokens["refresh_token"])
        assert took < 0.5 and isinstance(body["data"]["refresh"], str)
        assert "retry-after" not in headers
        took, headers, body = flooder.post(REFRESH, token=tokens["refresh_token"])
        assert took < 0.5
        error = body["errors"][0]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert headers["retry-after"] == str(error["extensions"]["retryAfter"])
        took, _, body = flooder.post(ME, token=tokens["access_token"])
        assert took < 0.5 and body["data"]["me"]["email"] == email

        # Each refusal it asks too soon for is held REFUSAL_HOLD_MAX_S (its Retry-After
        # being a minute); the 4th in a row closes the connection, answered at once.
        for _ in range(2):
            took, headers, body = flooder.post(LOGIN, credentials(email))
            assert 0.9 <= took < 3, took
            assert body["data"]["login"]["status"] == 429 and "connection" not in headers
        took, headers, body = flooder.post(LOGIN, credentials(email))
        assert took < 0.5 and body["data"]["login"]["status"] == 429
        assert headers["connection"] == "close" and flooder.closed_by_server()

        # Another client (address) is not held: its one login this minute.
        other = KeepAlive(service.port, "127.0.0.2")
        took, headers, body = other.post(LOGIN, credentials(email))
        other.close()
        assert body["data"]["login"]["status"] == 200 and took < 0.5
    finally:
        if flooder is not None:
            flooder.close()
        assert service.terminate() == 0, service.logs()


FLOOD_CONNECTIONS = 16


def test_a_flood_that_ignores_busy_is_held_and_a_login_beside_it_completes(
    tmp_path, mysql_server, redis_server
):
    """The issue's reproduction: two workers, bcrypt at 12 rounds, 16 connections that
    send the next login the moment a busy answer comes. Their busy answers cost a worker
    half a millisecond each; answered at once, they kept both event loops busy and no
    hash got a core (0 logins in 10 s)."""
    service, email = serve(tmp_path, mysql_server, redis_server, {
        "WORKERS": "2", "BCRYPT_ROUNDS": "12", "RATE_LIMIT_LOGIN_PER_IP": "off",
        "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT": "off",
    })  # fmt: skip
    stop = threading.Event()
    answers: list[tuple[float, dict, dict]] = []
    lock = threading.Lock()

    def flood() -> None:
        conn = KeepAlive(service.port)
        try:
            while not stop.is_set():
                try:
                    answer = conn.post(LOGIN, credentials(email))
                except ConnectionError:  # closed for ignoring: the flood reconnects
                    conn.close()
                    conn = KeepAlive(service.port)
                    continue
                with lock:
                    answers.append(answer)
        finally:
            conn.close()

    flooders = [threading.Thread(target=flood) for _ in range(FLOOD_CONNECTIONS)]
    try:
        for thread in flooders:
            thread.start()
        time.sleep(1)  # the flood is on
        # A client beside it that honours Retry-After logs in, retries included, soon.
        started = time.monotonic()
        logged_in = None
        polite = KeepAlive(service.port)
        while time.monotonic() - started < 10:
            _, headers, body = polite.post(LOGIN, credentials(email))
            if body["data"]["login"]["status"] == 200:
                logged_in = time.monotonic() - started
                break
            assert body["data"]["login"]["status"] == 503
            time.sleep(int(headers["retry-after"]))
        polite.close()
        flooding_s = time.monotonic() - started + 1
    finally:
        stop.set()
        for thread in flooders:
            thread.join(30)
        code = service.terminate()
    assert code == 0, service.logs()
    assert logged_in is not None and logged_in < 8, logged_in
    busy = [(took, headers, body) for took, headers, body in answers
            if body["data"]["login"]["status"] == 503]  # fmt: skip
    # Held, about one answer per Retry-After per connection (answered at once, they
    # came by the thousand).
    assert len(answers) < FLOOD_CONNECTIONS * (flooding_s + 4), (len(answers), flooding_s)
    assert sum(took >= 0.5 for took, _, _ in busy) > len(busy) / 2
    for _, headers, body in busy:
        assert int(headers["retry-after"]) >= 1
        assert body["data"]["login"]["errors"] == [
            {"path": "email", "message": "the server is busy, retry later"}
        ]


def test_past_the_held_answers_allowed_a_connection_is_closed_at_once(
    tmp_path, mysql_server, redis_server
):
    """Holding costs memory: one held answer allowed here, so a second client (another
    address) asking too soon meanwhile is answered at once and its connection closed."""
    service, email = serve(tmp_path, mysql_server, redis_server, {
        "WORKERS": "1", "RATE_LIMIT_LOGIN_PER_IP": "1/60", "REFUSAL_HOLD_MAX_S": "2",
        "REFUSALS_HELD_MAX": "1",
    })  # fmt: skip
    first, second = KeepAlive(service.port), KeepAlive(service.port, "127.0.0.2")
    try:
        assert first.post(LOGIN, credentials(email))[2]["data"]["login"]["status"] == 200
        assert first.post(LOGIN, credentials(email))[2]["data"]["login"]["status"] == 429
        held: list[tuple[float, dict, dict]] = []
        holding = threading.Thread(
            target=lambda: held.append(first.post(LOGIN, credentials(email)))
        )
        holding.start()  # too soon again, 59 s left: held REFUSAL_HOLD_MAX_S
        time.sleep(0.5)
        # Its address's one login a minute, then at once again: too soon, no room to hold.
        assert second.post(LOGIN, credentials(email))[2]["data"]["login"]["status"] == 200
        took, headers, body = second.post(LOGIN, credentials(email))
        assert body["data"]["login"]["status"] == 429 and took < 0.5
        assert headers["connection"] == "close" and second.closed_by_server()
        holding.join(10)
        took, headers, body = held[0]
        assert took >= 1.5 and body["data"]["login"]["status"] == 429
        assert "connection" not in headers
    finally:
        first.close()
        second.close()
        assert service.terminate() == 0, service.logs()
