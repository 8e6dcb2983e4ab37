"""The failed-login limit across worker processes: `authsvc serve --workers 2`, guesses
sent at once over real connections, on MariaDB + Redis and on the embedded store."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.processes import ServiceProcess
from tests.e2e.test_serve import migrate, production_env
from tests.e2e.test_workers import wait_for, worker_pids
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email

LIMITS = {
    "WORKERS": "2",
    "BCRYPT_ROUNDS": "10",  # about 75 ms a hash: every guess is in flight at once
    "HASH_QUEUE_MAX_WAIT_S": "30",  # this test is about the limit, not the busy bound
    "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT": "10/900",
    "RATE_LIMIT_LOGIN_PER_IP": "off",
    "LOG_FORMAT": "text",
}


@pytest.mark.parametrize("backend", ["servers", "embedded"])
def test_parallel_guesses_across_two_workers_evaluate_at_most_the_limit(
    tmp_path, mysql_server, redis_server, backend
):
    env = LIMITS
    if backend == "servers":
        env = production_env(mysql_server, redis_server) | LIMITS
        migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        wait_for(lambda: len(worker_pids(service.process.pid)) == 2)
        email = new_email()
        _, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        assert body["data"]["register"]["status"] == 201, body

        def guess(password: str) -> int:
            _, body = service.graphql(LOGIN, {"email": email, "password": password})
            return int(body["data"]["login"]["status"])

        passwords = [f"guess number {i}" for i in range(20)]
        with ThreadPoolExecutor(len(passwords)) as pool:  # a connection each
            statuses = list(pool.map(guess, passwords))
        assert sorted(statuses) == [401] * 10 + [429] * 10, statuses
        assert guess(PASSWORD) == 429  # the right password, past the limit
    finally:
        assert service.terminate() == 0
    # Every password evaluated was audited, by whichever worker evaluated it.
    assert service.logs().count("event=login_failed") == 10
