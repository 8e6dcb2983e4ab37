"""A mixed load of every operation from clients with keep-alive connections, and the
record of every answer: when it was sent and answered, what was asked, what came back.

Each client is a thread with one HTTP/1.1 connection at a time, from a loopback
address of its own (127.0.0.N), as separate hosts would be. It registers an account,
logs in, then keeps calling register, login, refresh, renew, `me` and now and then
logout, the way a careful client does: it honours Retry-After before its next login or
registration, and after a renew whose outcome it did not learn it renews again with
the same token (a retry the reuse grace allows) before it uses the session otherwise.
Clients keep their accounts and sessions from one scenario to the next; connections
are closed at the end of each, so every scenario opens its own.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.helpers import LOGIN, LOGOUT, ME, PASSWORD, REFRESH, REGISTER, RENEW

#: A client waits this long between two requests: 20 clients then offer at most about
#: 1,000 requests a second, which keeps the two workers busy without leaving the stores
#: (on the same two cores) no CPU, so that what is timed is the fault, not the queue.
THINK_S = 0.02
#: A socket waits this long for an answer before it counts as none: far beyond every
#: latency bound, so that a hang is seen as a hang.
ANSWER_TIMEOUT_S = 10.0

#: What a client with a session asks, and how often (relative weights).
WEIGHTS = {"me": 30, "refresh": 18, "renew": 15, "login": 12, "register": 15, "logout": 3}
#: Operations that hash a password: the ones a Retry-After holds back.
HASHING = frozenset({"register", "login"})

DOCUMENTS = {
    "register": REGISTER,
    "login": LOGIN,
    "refresh": REFRESH,
    "renew": RENEW,
    "me": ME,
    "logout": LOGOUT,
}


def new_email() -> str:
    """An address no other run and no other scenario uses (stored as written)."""
    return f"fault-{uuid.uuid4().hex[:16]}@example.com"


@dataclass(slots=True)
class Answer:
    """One request and what became of it. ``outcome`` is one of:

    ok, unavailable (SERVICE_UNAVAILABLE), busy (BUSY, status 503), internal
    (INTERNAL_SERVER_ERROR), http_5xx (any other 5xx), other (any other answer: a code
    such as UNAUTHENTICATED, a refusal, a body that is not the API's), no_answer (sent,
    then the connection failed or timed out) and refused (the connection could not be
    opened: nothing was sent)."""

    op: str
    sent: float  # time.monotonic() before the request was written
    answered: float  # when the answer, or the failure, came
    outcome: str
    status: int | None = None  # HTTP status
    codes: tuple[str, ...] = ()  # extensions.code of each GraphQL error
    detail: str = ""  # what an "other", "no_answer" or "refused" was
    opened: float = 0.0  # when the connection it went on was opened
    retry_after_s: float | None = None  # the Retry-After header, if any
    email: str | None = None  # register: the address it asked for
    result: Any = None  # the operation's data when ok
    #: When the session its token belongs to was last written (the answer of the login
    #: or renew that handed the token out); None for a request without a session.
    session_written: float | None = None

    @property
    def latency_s(self) -> float:
        return self.answered - self.sent

    @property
    def answered_at_all(self) -> bool:
        return self.outcome not in ("no_answer", "refused")


def classify(op: str, status: int, raw: bytes) -> tuple[str, tuple[str, ...], str, Any]:
    """(outcome, codes, detail, result) of an HTTP answer to ``op``."""
    try:
        body = json.loads(raw)
    except ValueError:
        return ("http_5xx" if status >= 500 else "other"), (), f"not JSON: {raw[:80]!r}", None
    errors = (body.get("errors") or []) if isinstance(body, dict) else []
    codes = tuple(str((e.get("extensions") or {}).get("code", "")) for e in errors)
    data = (body.get("data") or {}) if isinstance(body, dict) else {}
    field = data.get(op)
    refused_status = field.get("status") if isinstance(field, dict) and op in HASHING else None
    if "BUSY" in codes or refused_status == 503:
        return "busy", codes, "", None
    if "INTERNAL_SERVER_ERROR" in codes:
        return "internal", codes, "", None
    if status >= 500:
        return "http_5xx", codes, raw[:120].decode(errors="replace"), None
    if "SERVICE_UNAVAILABLE" in codes:
        return "unavailable", codes, "", None
    if codes or field is None:
        return "other", codes, raw[:160].decode(errors="replace"), None
    if op in HASHING:
        wanted = 201 if op == "register" else 200
        if refused_status != wanted:
            return "other", codes, f"status {refused_status}: {field.get('errors')}", None
    if op == "logout" and field is not True:
        return "other", codes, f"logout answered {field!r}", None
    return "ok", codes, "", field


class Connection:
    """One keep-alive HTTP/1.1 connection at a time to the service, reopened after the
    server closes one (`Connection: close`) or after it fails."""

    def __init__(self, port: int, source: str) -> None:
        self.port = port
        self.source = source
        self._conn: http.client.HTTPConnection | None = None
        self._opened = 0.0

    def post(
        self, op: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> Answer:
        """POST ``op``'s document and return what became of it; never raises for a
        network failure (that is an outcome)."""
        if self._conn is None:
            started = time.monotonic()
            conn = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=ANSWER_TIMEOUT_S, source_address=(self.source, 0)
            )
            try:
                conn.connect()
            except OSError as exc:
                conn.close()
                return Answer(op, started, time.monotonic(), "refused", detail=repr(exc),
                              opened=started, email=_email(op, variables))  # fmt: skip
            self._conn, self._opened = conn, started
        body = json.dumps({"query": DOCUMENTS[op], "variables": variables or {}})
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        opened = self._opened
        sent = time.monotonic()
        try:
            self._conn.request("POST", "/graphql", body, headers)
            response = self._conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Answer(op, sent, time.monotonic(), "no_answer", detail=repr(exc),
                          opened=opened, email=_email(op, variables))  # fmt: skip
        answered = time.monotonic()
        if response.will_close:
            self.close()
        outcome, codes, detail, result = classify(op, response.status, raw)
        retry_after = response.getheader("Retry-After")
        return Answer(
            op, sent, answered, outcome, response.status, codes, detail, opened,
            float(retry_after) if retry_after else None, _email(op, variables), result,
        )  # fmt: skip

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _email(op: str, variables: dict[str, Any] | None) -> str | None:
    return (variables or {}).get("email") if op == "register" else None


class Registrations:
    """Every address the suite asked to register, with the answer it got (the last
    one), across scenarios: what the users table must hold."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answers: dict[str, Answer] = {}
        #: Addresses whose registration may or may not have been stored: its answer was
        #: lost, or it was in flight when the database (or its worker) died.
        self.in_doubt: set[str] = set()

    def record(self, answer: Answer) -> None:
        if answer.op == "register" and answer.email is not None:
            with self._lock:
                self.answers[answer.email] = answer
                if answer.outcome == "no_answer":
                    self.in_doubt.add(answer.email)

    def created(self) -> set[str]:
        with self._lock:
            return {email for email, a in self.answers.items() if a.outcome == "ok"}

    def doubt(self, answers: Iterable[Answer], windows: Iterable[tuple[float, float]]) -> int:
        """Marks as in doubt the registrations among ``answers`` that were refused as
        unavailable while one of ``windows`` (the moments a database went away or a
        worker died) was in flight; returns how many."""
        windows = list(windows)
        marked = 0
        with self._lock:
            for a in answers:
                if a.op != "register" or a.email is None or a.outcome == "ok":
                    continue
                if any(a.sent <= end and a.answered >= start for start, end in windows):
                    self.in_doubt.add(a.email)
                    marked += 1
        return marked


class Client:
    """A user of the service: an account, a session, and the rules it keeps."""

    def __init__(self, port: int, source: str, registrations: Registrations) -> None:
        self.connection = Connection(port, source)
        self.registrations = registrations
        self.email: str | None = None  # its account, once a registration succeeded
        self.access: str | None = None
        self.refresh: str | None = None
        self.renew_unsettled = False  # the last renew's outcome is unknown
        self.session_written: float | None = None  # see Answer.session_written
        self.hashing_calm_at = 0.0  # Retry-After: no login/register before this
        self.random = random.Random()

    def step(self) -> Answer | None:
        """Send the next request and learn from its answer; None if the client has
        nothing it may send now (waiting out a Retry-After without a session)."""
        op = self._next_op()
        if op is None:
            return None
        variables: dict[str, Any] | None = None
        token: str | None = None
        if op == "register":
            variables = {"email": new_email(), "password": PASSWORD}
        elif op == "login":
            variables = {"email": self.email, "password": PASSWORD}
        elif op == "me":
            token = self.access
        else:  # refresh, renew, logout
            token = self.refresh
        answer = self.connection.post(op, variables, token)
        if token is not None:
            answer.session_written = self.session_written
        self.registrations.record(answer)
        self._learn(answer)
        return answer

    def _next_op(self) -> str | None:
        may_hash = time.monotonic() >= self.hashing_calm_at
        if self.email is None:
            return "register" if may_hash else None
        if self.refresh is None:
            return "login" if may_hash else None
        if self.renew_unsettled:
            return "renew"
        ops = [op for op in WEIGHTS if may_hash or op not in HASHING]
        return self.random.choices(ops, [WEIGHTS[op] for op in ops])[0]

    def _learn(self, answer: Answer) -> None:
        if answer.retry_after_s is not None and answer.op in HASHING:
            self.hashing_calm_at = time.monotonic() + answer.retry_after_s
        op, ok = answer.op, answer.outcome == "ok"
        if op == "register" and ok and self.email is None:
            self.email = answer.email
        elif op == "login" and ok:
            tokens = json.loads(answer.result["payload"])
            self.access, self.refresh = tokens["access_token"], tokens["refresh_token"]
            self.renew_unsettled = False
            self.session_written = answer.answered
        elif op == "refresh" and ok:
            self.access = answer.result
        elif op == "renew":
            if ok:
                self.access = answer.result["accessToken"]
                self.refresh = answer.result["refreshToken"]
                self.session_written = answer.answered
            # Unknown outcome: the session may have moved on; the same token again is
            # the retry the reuse grace is for. Refused outright: the session is gone.
            self.renew_unsettled = answer.outcome in ("unavailable", "no_answer", "busy")
            if answer.outcome == "other":
                self.forget_session()
        elif op == "logout":
            self.forget_session()  # ended, or perhaps ended: never used again
        elif op in ("me", "refresh") and "UNAUTHENTICATED" in answer.codes:
            self.forget_session()

    def forget_session(self) -> None:
        self.access = self.refresh = None
        self.renew_unsettled = False


class ClientPool:
    """The clients of one service, kept from one scenario to the next."""

    def __init__(self, port: int, registrations: Registrations, size: int) -> None:
        # 127.0.0.0/8 is all loopback on Linux: each client its own address.
        self.clients = [Client(port, f"127.0.0.{20 + i}", registrations) for i in range(size)]

    def forget_sessions(self) -> None:
        for client in self.clients:
            client.forget_session()


class Load:
    """Every client of ``pool`` stepping on a thread of its own until ``stop()``."""

    def __init__(self, pool: ClientPool) -> None:
        self.pool = pool
        self.answers: list[Answer] = []  # list.append is atomic: no lock needed
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(client,), daemon=True)
            for client in pool.clients
        ]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, client: Client) -> None:
        try:
            while not self._stop.is_set():
                answer = client.step()
                if answer is not None:
                    self.answers.append(answer)
                    if answer.outcome == "refused":
                        self._stop.wait(0.05)  # nothing listens: do not spin
                self._stop.wait(THINK_S)
        finally:
            client.connection.close()

    def stop(self) -> list[Answer]:
        """Stop every client (each finishes the request it is in) and return every
        answer, in the order they came."""
        self._stop.set()
        for thread in self._threads:
            thread.join(ANSWER_TIMEOUT_S + 5)
        assert not any(t.is_alive() for t in self._threads), "a load client hangs"
        return sorted(self.answers, key=lambda a: a.answered)
