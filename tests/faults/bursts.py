"""Requests sent all at once, each on a connection of its own: a race of renewals of
one refresh token, and bursts that make each worker use many pooled store connections
at the same moment (before a fault, to grow the pools; after, to reach every pooled
connection a restart left dead, not only the few a steady load keeps cycling)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt

from tests.faults.load import Answer, Connection, new_email
from tests.helpers import PASSWORD

#: Renewals of one refresh token sent at once.
RACE_SIZE = 20
#: Requests of a burst: per worker more than the load keeps in flight.
BURST_SIZE = 24


@dataclass(frozen=True)
class Session:
    email: str
    access: str
    refresh: str


def jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


class Burst:
    """``requests`` ((op, variables, token) each) sent together, once every connection
    is open; their answers recorded like the load's."""

    def __init__(self, port: int, requests: list[tuple[str, dict[str, Any] | None, str | None]]):
        self.port = port
        self.requests = requests
        self.answers: list[Answer] = []
        self._thread: threading.Thread | None = None

    def run(self) -> list[Answer]:
        barrier = threading.Barrier(len(self.requests))

        def one(i: int, op: str, variables: dict[str, Any] | None, token: str | None) -> None:
            connection = Connection(self.port, f"127.0.0.{100 + i}")
            barrier.wait()
            self.answers.append(connection.post(op, variables, token))
            connection.close()

        threads = [threading.Thread(target=one, args=(i, *request))
                   for i, request in enumerate(self.requests)]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.answers

    def start(self, delay_s: float = 0.0) -> None:
        """Run in the background, ``delay_s`` from now."""

        def later() -> None:
            time.sleep(delay_s)
            self.run()

        self._thread = threading.Thread(target=later, daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(30)


class RenewRace(Burst):
    def __init__(self, port: int, refresh: str) -> None:
        super().__init__(port, [("renew", None, refresh)] * RACE_SIZE)
        self.refresh = refresh

    def children(self) -> set[str]:
        """The refresh tokens' jtis the race's successes handed out."""
        return {jti(a.result["refreshToken"]) for a in self.answers if a.outcome == "ok"}


def pool_burst(port: int, sessions: list[Session]) -> Burst:
    """Every kind of store call at once: sessions read (refresh), users and sessions
    read (me), sessions written (login), users written (register)."""
    requests: list[tuple[str, dict[str, Any] | None, str | None]] = []
    for i in range(BURST_SIZE):
        session = sessions[i % len(sessions)]
        kind = i % 4
        if kind == 0:
            requests.append(("refresh", None, session.refresh))
        elif kind == 1:
            requests.append(("me", None, session.access))
        elif kind == 2:
            requests.append(("login", {"email": session.email, "password": PASSWORD}, None))
        else:
            requests.append(("register", {"email": new_email(), "password": PASSWORD}, None))
    return Burst(port, requests)
