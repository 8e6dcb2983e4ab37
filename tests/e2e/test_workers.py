"""`authsvc serve --workers N`: N processes on one port, a dead worker replaced, and
SIGTERM draining in-flight requests before a clean exit."""

from __future__ import annotations

import os
import signal
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
        assert service.terminate() == 0
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
