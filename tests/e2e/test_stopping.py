"""Stopping always ends: SIGTERM while the database is frozen, and a worker that does
not stop at all (killed once its deadline passes); SIGHUP stops nothing.

The frozen database is the test's own: freezing the shared one would stall others."""

from __future__ import annotations

import os
import signal
import threading
import time

import pymysql
import pytest

from tests.e2e.processes import ServiceProcess, ThrowawayMariaDB
from tests.e2e.test_serve import migrate, production_env
from tests.e2e.test_workers import wait_for, worker_pids
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email

SHUTDOWN_TIMEOUT_S = 1.0
STORE_TIMEOUT_S = 1.0


@pytest.fixture
def own_mariadb(tmp_path):
    db = ThrowawayMariaDB(tmp_path)
    db.start()
    with pymysql.connect(host="127.0.0.1", port=db.port, user="root") as conn:
        conn.cursor().execute("CREATE DATABASE authsvc_stopping")
    yield db
    db.thaw()
    db.stop()


def env_on(mariadb: ThrowawayMariaDB, mysql_server, redis_server, workers: int) -> dict[str, str]:
    return production_env(mysql_server, redis_server) | {
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(mariadb.port),
        "DB_USERNAME": "root",
        "DB_PASSWORD": "",
        "DB_NAME": "authsvc_stopping",
        "WORKERS": str(workers),
        "SHUTDOWN_TIMEOUT_S": str(SHUTDOWN_TIMEOUT_S),
        "STORE_TIMEOUT_S": str(STORE_TIMEOUT_S),
        "DB_CONNECT_TIMEOUT_S": "1",
    }


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_while_the_database_is_frozen_stops_the_service(
    tmp_path, own_mariadb, mysql_server, redis_server
):
    """Logins in flight when the database froze outlast the drain (SHUTDOWN_TIMEOUT_S
    is shorter than a store call's timeout here): the pools are closed while they
    still hold connections. Closing must not wait for those (it did, for ever: a
    failed connection given back to aiomysql's pool wakes nobody waiting for it to
    close), and the service exits 0 before the supervisor would have to kill it."""
    store_timeout_s = 3.0  # the logins still wait when the pools are closed
    env = env_on(own_mariadb, mysql_server, redis_server, workers=2) | {
        "SHUTDOWN_TIMEOUT_S": "0.2",
        "STORE_TIMEOUT_S": str(store_timeout_s),
    }
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        email = new_email()
        _, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        assert body["data"]["register"]["status"] == 201
        own_mariadb.freeze()
        answers: list[object] = []

        def login() -> None:
            try:
                answers.append(service.graphql(LOGIN, {"email": email, "password": PASSWORD})[1])
            except OSError as exc:  # cut at the end of the drain: allowed, it was told
                answers.append(exc)

        in_flight = [threading.Thread(target=login) for _ in range(4)]
        for thread in in_flight:
            thread.start()
        time.sleep(0.3)  # the logins wait on the frozen database
        began = time.monotonic()
        code = service.terminate(timeout_s=30)
        took = time.monotonic() - began
        for thread in in_flight:
            thread.join(10)
    finally:
        own_mariadb.thaw()
        service.stop()
    logs = service.logs()
    assert code == 0, logs[-3000:]
    assert "killing it" not in logs and "Traceback" not in logs, logs[-3000:]
    # The drain, its idle grace, then each pool closes within a store timeout; what is
    # left is the process's own exit.
    assert took < 2 * 0.2 + 1.0 + 2 * store_timeout_s + 2.0, (took, logs[-3000:])
    assert len(answers) == 4
    for answer in answers:
        if isinstance(answer, dict):
            assert [e["extensions"]["code"] for e in answer["errors"]] == ["SERVICE_UNAVAILABLE"], (
                answer
            )


def test_a_worker_that_does_not_stop_is_killed_at_its_deadline(
    tmp_path, own_mariadb, mysql_server, redis_server
):
    """A worker stuck so hard it never handles SIGTERM (here: SIGSTOP) must not keep
    the service from stopping: the supervisor kills it once the longest legitimate
    stop (drain, grace, closing the stores, margin) is over, says so, and exits 1."""
    # The deadline is built from these two: halved, it still shows each part of it.
    shutdown_timeout_s = store_timeout_s = 0.5
    env = env_on(own_mariadb, mysql_server, redis_server, workers=2) | {
        "SHUTDOWN_TIMEOUT_S": str(shutdown_timeout_s),
        "STORE_TIMEOUT_S": str(store_timeout_s),
    }
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        wait_for(lambda: len(worker_pids(service.process.pid)) == 2)
        stuck, other = sorted(worker_pids(service.process.pid))
        os.kill(stuck, signal.SIGSTOP)
        began = time.monotonic()
        code = service.terminate(timeout_s=60)
        took = time.monotonic() - began
    finally:
        service.stop()
    logs = service.logs()
    deadline = 2 * shutdown_timeout_s + 1.0 + 2 * store_timeout_s + 5.0  # stop_deadline_s
    assert code == 1, logs[-3000:]
    assert f"(pid {stuck}) did not stop within" in logs, logs[-3000:]
    assert f"(pid {other}) did not stop" not in logs  # the other drained as usual
    assert deadline - 0.5 < took < deadline + 3.0, took
    assert not alive(stuck) and not alive(other)


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_stops_nothing(tmp_path, mysql_server, redis_server, workers):
    """SIGHUP (a closed terminal, a `kill -HUP` meant as reload) would end a process by
    default: the service and each worker keep serving, and the log says it was ignored."""
    env = production_env(mysql_server, redis_server) | {"WORKERS": str(workers)}
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        if workers > 1:
            wait_for(lambda: len(worker_pids(service.process.pid)) == workers)
        pids = service.pids()
        for pid in pids:
            os.kill(pid, signal.SIGHUP)
        wait_for(lambda: "SIGHUP ignored" in service.logs(), 5)
        for _ in range(2 * workers):  # whichever worker takes it
            assert service.graphql("{ __typename }")[0] == 200
        assert all(alive(pid) for pid in pids)
        assert service.pids() == pids  # none died and was replaced
    finally:
        code = service.terminate()
    assert code == 0, service.logs()[-3000:]
