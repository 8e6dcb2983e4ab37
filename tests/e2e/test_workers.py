"""`authsvc serve --workers N`: N processes on one port, a dead worker replaced, and
SIGTERM draining in-flight requests before a clean exit."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

from tests.e2e.processes import ServiceProcess
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email


def worker_pids(supervisor_pid: int) -> set[int]:
    children = Path(f"/proc/{supervisor_pid}/task/{supervisor_pid}/children")
    return {int(pid) for pid in children.read_text().split()}


def wait_for(condition, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_workers_are_replaced_and_sigterm_exits_0(tmp_path, mysql_server, redis_server):
    env = production_env(mysql_server, redis_server) | {"WORKERS": "2"}
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        wait_for(lambda: len(worker_pids(service.process.pid)) == 2)
        first = worker_pids(service.process.pid)
        os.kill(next(iter(first)), signal.SIGKILL)  # a worker dies
        wait_for(lambda: len(worker_pids(service.process.pid) - first) == 1)
        email = new_email()
        for _ in range(6):  # every request is answered, whichever worker takes it
            status, body = service.graphql("{ __typename }")
            assert (status, body) == (200, {"data": {"__typename": "Query"}})
        _, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        assert body["data"]["register"]["status"] == 201
    finally:
        code = service.terminate()
        assert code == 0, service.logs()
    logs = service.logs()
    assert "died" in logs and "supervisor stopped" in logs


def test_sigterm_lets_in_flight_requests_finish(tmp_path, mysql_server, redis_server):
    # bcrypt at 14 rounds: a login takes about a second, long enough to be in flight.
    env = production_env(mysql_server, redis_server) | {"WORKERS": "1", "BCRYPT_ROUNDS": "14"}
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    email = new_email()
    answers: list[dict] = []
    try:
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})

        def slow_login() -> None:
            answers.append(service.graphql(LOGIN, {"email": email, "password": PASSWORD})[1])

        thread = threading.Thread(target=slow_login)
        thread.start()
        time.sleep(0.3)  # the login is being hashed now
    finally:
        code = service.terminate()
    thread.join(30)
    assert code == 0
    assert answers and answers[0]["data"]["login"]["status"] == 200
    assert "draining 1 in-flight requests" in service.logs()


def test_a_client_that_hangs_up_does_not_cut_its_request_short(tmp_path, mysql_server,
                                                              redis_server):  # fmt: skip
    """The login of a client that left still finishes (its session is stored) before
    shutdown closes the pools: no store error in the logs."""
    env = production_env(mysql_server, redis_server) | {"WORKERS": "1", "BCRYPT_ROUNDS": "14"}
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    email = new_email()
    try:
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        body = json.dumps({"query": LOGIN, "variables": {"email": email, "password": PASSWORD}})
        with socket.create_connection(("127.0.0.1", service.port)) as sock:
            sock.sendall(
                b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
            )
            time.sleep(0.3)  # the login is being hashed now
        time.sleep(0.1)  # the server has seen the hang-up
    finally:
        code = service.terminate()
    assert code == 0
    logs = service.logs()
    assert "draining 1 in-flight requests" in logs
    assert "unavailable" not in logs and "Traceback" not in logs, logs


def test_a_request_sent_on_an_idle_connection_during_the_drain_is_answered(
    tmp_path, mysql_server, redis_server
):
    """SIGTERM closed idle keep-alive connections at once, under clients that were
    sending their next request on them (issue 12): now such a request is answered, with
    `Connection: close`, before the connection goes."""
    env = production_env(mysql_server, redis_server) | {"WORKERS": "1"}
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    request = b"GET /healthz HTTP/1.1\r\nHost: authsvc\r\n\r\n"
    connections = []
    try:
        for _ in range(5):  # kept alive after one request each
            conn = socket.create_connection(("127.0.0.1", service.port), timeout=5)
            conn.sendall(request)
            assert conn.recv(4096).startswith(b"HTTP/1.1 200")
            connections.append(conn)
        service.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # the drain has begun: nothing in flight, these connections idle
        for conn in connections:
            conn.sendall(request)
            answer = conn.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert b"Connection: close" in answer
    finally:
        for conn in connections:
            conn.close()
        assert service.terminate() == 0, service.logs()  # SIGTERM again: still one drain


def test_workers_stop_when_the_supervisor_is_killed(tmp_path, mysql_server, redis_server):
    """A supervisor killed outright (SIGKILL: the OOM killer, a forced stop) leaves no
    worker serving on its port: each drains and exits, so a restarted service never
    runs beside the old one's workers."""
    env = production_env(mysql_server, redis_server) | {"WORKERS": "2"}
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        wait_for(lambda: len(worker_pids(service.process.pid)) == 2)
        workers = worker_pids(service.process.pid)
        service.process.kill()
        service.process.wait(10)

        def alive(pid: int) -> bool:
            try:
                return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
            except FileNotFoundError:
                return False

        wait_for(lambda: not any(alive(pid) for pid in workers))
    finally:
        service.stop()
