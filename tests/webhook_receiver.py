"""A real HTTP receiver of webhooks for the tests: the standard library's threading
HTTP server on 127.0.0.1 (a thread per connection, so one stalled request holds up no
other), recording every POST and answering as scripted per path.

    receiver = WebhookReceiver(); receiver.start()
    url = receiver.url("/a")
    receiver.script("/a", Answer(500), Answer(429, retry_after="2"), DROP)  # then 200s
    receiver.always["/b"] = STALL                 # every request to /b hangs (until stop)
    got = await receiver.next("/a", timeout_s=10) # the next unread delivery to /a
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.e2e.processes import free_port


@dataclass(frozen=True)
class Answer:
    status: int = 200
    retry_after: str | None = None


#: Close the connection without an answer, once the request is read.
DROP = "drop"
#: Hold the request, never answering (until the receiver stops).
STALL = "stall"

Action = Answer | str


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class WebhookReceiver:
    port: int = field(default_factory=free_port)
    #: Every request read, in arrival order, whatever it was answered.
    received: list[Delivery] = field(default_factory=list)
    #: Answers that replace the next ones to a path, once each.
    scripted: dict[str, deque[Action]] = field(default_factory=dict)
    #: The answer to every request to a path while set (else 200).
    always: dict[str, Action] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._read: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *actions: Action) -> None:
        with self._lock:
            self.scripted.setdefault(path, deque()).extend(actions)

    def to(self, path: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self.received if d.path == path]

    async def next(self, path: str, timeout_s: float = 10.0) -> Delivery:
        """The next delivery to ``path`` not returned before (answered or not)."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = self.to(path)
            index = self._read.get(path, 0)
            if len(seen) > index:
                self._read[path] = index + 1
                return seen[index]
            if time.monotonic() > deadline:
                raise AssertionError(f"no delivery to {path} within {timeout_s} s")
            await asyncio.sleep(0.02)

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                path = self.path
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Delivery(path, headers, body, time.monotonic()))
                    queue = receiver.scripted.get(path)
                    action = queue.popleft() if queue else receiver.always.get(path, Answer())
                if action == DROP:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action == STALL:
                    receiver._released.wait(120)
                    self.close_connection = True
                    return
                assert isinstance(action, Answer)
                self.send_response(action.status)
                if action.retry_after is not None:
                    self.send_header("Retry-After", action.retry_after)
                answer = b"ok" if action.status < 300 else b"refused, and a long body " * 50
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._released.set()  # stalled requests end
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
