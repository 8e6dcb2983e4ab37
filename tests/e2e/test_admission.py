"""Admission by expected wait, against the real server process over HTTP: a fast
configuration answers a burst of logins and registrations without one "busy"."""

from __future__ import annotations

import json
import threading

from tests.e2e.test_flood import KeepAlive, credentials, serve
from tests.helpers import LOGIN, REGISTER, new_email

CLIENTS = 30
ROUNDS = 3


def test_a_fast_configuration_answers_a_burst_of_logins_and_registrations_none_busy(
    tmp_path, mysql_server, redis_server
):
    """Issue 12, item 4: at BCRYPT_ROUNDS=4 (about a millisecond a hash) 20 to 30 clients
    got hundreds of busy answers with no fault at all, since admission counted requests
    (4 per hashing thread, lookups included) whatever their hashes cost. Here 30
    clients, a kept-alive connection each, register and log in at the same instant,
    round after round: the hashes ahead of any of them take milliseconds, far below
    HASH_QUEUE_MAX_WAIT_S, so none is refused, those that ask again too soon (each
    client's login follows its registration at once) included."""
    service, _ = serve(tmp_path, mysql_server, redis_server, {
        "WORKERS": "2", "BCRYPT_ROUNDS": "4", "RATE_LIMIT_LOGIN_PER_IP": "off",
        "RATE_LIMIT_REGISTER_PER_IP": "off",
    })  # fmt: skip
    start = threading.Barrier(CLIENTS)
    statuses: list[tuple[str, int]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        conn = KeepAlive(service.port)
        try:
            for _ in range(ROUNDS):
                email = new_email()
                start.wait(30)  # every client's registration leaves together
                _, _, body = conn.post(REGISTER, credentials(email))
                registered = body["data"]["register"]["status"]
                _, _, body = conn.post(LOGIN, credentials(email))
                logged_in = body["data"]["login"]
                with lock:
                    statuses.extend([("register", registered), ("login", logged_in["status"])])
                if logged_in["status"] == 200:
                    assert set(json.loads(logged_in["payload"])) >= {"access_token"}
        except BaseException as exc:  # reported by the test's own thread
            with lock:
                failures.append(exc)
            start.abort()
        finally:
            conn.close()

    clients = [threading.Thread(target=client) for _ in range(CLIENTS)]
    try:
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(120)
    finally:
        code = service.terminate()
    assert code == 0, service.logs()
    assert not failures, failures[0]
    busy = [answer for answer in statuses if answer[1] == 503]
    assert not busy, f"{len(busy)} of {len(statuses)} answered busy"
    assert sorted(set(statuses)) == [("login", 200), ("register", 201)], set(statuses)
    assert len(statuses) == 2 * CLIENTS * ROUNDS
