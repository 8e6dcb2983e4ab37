"""The servers a fault scenario breaks, all the suite's own on loopback ports (never the
shared MariaDB and Redis): a MariaDB instance in a temporary data directory, a Redis
with an append-only file, and `authsvc serve` in production with two workers."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pymysql
import redis

from tests.conftest import ACCESS_SECRET, REFRESH_SECRET
from tests.e2e.processes import (
    ServiceProcess,
    ThrowawayMariaDB,
    ThrowawayRedis,
    authsvc_command,
    child_env,
)
from tests.faults.bursts import Session
from tests.faults.load import ClientPool, Connection, Registrations, new_email
from tests.helpers import PASSWORD

#: The service's bound on one store call. One second: an outage is answered quickly,
#: and a scenario's fault (2.5 s) outlasts it, so that calls do time out.
STORE_TIMEOUT_S = 1.0
#: The longest the service holds a refusal that carries a Retry-After (BUSY,
#: RATE_LIMITED) from a client that asked again too soon (graphql/pacing.py; every
#: refusal is held 0.5 s at least). Set explicitly: the latency bound depends on it.
REFUSAL_HOLD_MAX_S = 2.0
#: Clients driving the load.
CLIENTS = 20
DATABASE = "authsvc_faults"
WORKERS = 2


def service_env(mariadb: ThrowawayMariaDB, redis_env: dict[str, str]) -> dict[str, str]:
    """Production, as deployed, on the suite's own servers; ``redis_env`` says where
    Redis is (REDIS_URL, or the REDIS_SENTINELS)."""
    return {
        "NODE_ENV": "production",
        "WORKERS": str(WORKERS),
        "BCRYPT_ROUNDS": "4",
        "STORE_TIMEOUT_S": str(STORE_TIMEOUT_S),
        "DB_CONNECT_TIMEOUT_S": "1",
        "DB_TYPE": "mariadb",
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(mariadb.port),
        "DB_USERNAME": "root",
        "DB_NAME": DATABASE,
        "JWT_ACCESS_SECRET": ACCESS_SECRET,
        "JWT_REFRESH_SECRET": REFRESH_SECRET,
        "REFUSAL_HOLD_MAX_S": str(REFUSAL_HOLD_MAX_S),
        # 20 clients register and log in many times a second, each from an address of
        # its own: the per-address limits would refuse them within seconds, and what is
        # measured is the faults, not the limits. Limits stay on (their counters are
        # Redis writes like any other), just out of reach.
        "RATE_LIMIT_LOGIN_PER_IP": "1000000/60",
        "RATE_LIMIT_REGISTER_PER_IP": "1000000/60",
        "RATE_LIMIT_REFRESH_PER_SESSION": "1000000/60",
        # A renew race is checked up to ~8 s after it ran (after the fault and the
        # recovery window): a parent retried then must still be inside the grace.
        "REFRESH_REUSE_GRACE_S": "30",
        "LOG_LEVEL": "INFO",
        **redis_env,
    }


def start_mariadb(workdir: Path) -> ThrowawayMariaDB:
    server = ThrowawayMariaDB(workdir)
    server.start()
    with connect(server) as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {DATABASE}")
    return server


def connect(mariadb: ThrowawayMariaDB, database: str | None = None) -> pymysql.Connection:
    return pymysql.connect(
        host="127.0.0.1", port=mariadb.port, user="root", database=database,
        autocommit=True, connect_timeout=5,
    )  # fmt: skip


def migrate(workdir: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        authsvc_command("migrate"), cwd=workdir, env=child_env(env),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition`` until true; returns when it became true. Raises naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.02)
    return time.monotonic()


class FaultEnv:
    """One running service on the suite's servers, with its load clients (kept from
    one scenario to the next) and the record of every registration."""

    def __init__(
        self,
        workdir: Path,
        mariadb: ThrowawayMariaDB,
        registrations: Registrations,
        redis_server: ThrowawayRedis | None = None,
        redis_env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.mariadb = mariadb
        self.redis = redis_server
        self.registrations = registrations
        if redis_env is None:
            assert redis_server is not None
            redis_env = {"REDIS_URL": redis_server.url}
        self.env = service_env(mariadb, redis_env)
        migrate(workdir, self.env)
        self._starts = 0
        self.service = self._start_service()
        self.pool = ClientPool(self.service.port, registrations, CLIENTS)
        self.probe = Connection(self.service.port, "127.0.0.2")

    def _start_service(self, port: int | None = None) -> ServiceProcess:
        self._starts += 1
        folder = self.workdir / f"service-{self._starts}"  # each start keeps its own log
        folder.mkdir()
        service = ServiceProcess(folder, self.env, port)
        wait_until(lambda: len(self.workers(service)) == WORKERS, 20, "the workers started")
        wait_until(lambda: self.http_status("/readyz", service) == 200, 20, "ready")
        return service

    def workers(self, service: ServiceProcess | None = None) -> list[int]:
        service = service or self.service
        if service.process.poll() is not None:
            return []
        return service.pids()[1:]

    def http_status(self, path: str, service: ServiceProcess | None = None) -> int | None:
        port = (service or self.service).port
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            error.close()
            return int(error.code)
        except OSError:
            return None

    def post(self, op: str, variables=None, token: str | None = None, within_s: float = 0.0):
        """One request on the probe connection, recorded like the load's; asked again
        while it is answered SERVICE_UNAVAILABLE or not at all, for ``within_s``."""
        deadline = time.monotonic() + within_s
        while True:
            answer = self.probe.post(op, variables, token)
            self.registrations.record(answer)
            if answer.outcome not in ("unavailable", "no_answer", "refused"):
                return answer
            if time.monotonic() > deadline:
                return answer
            time.sleep(0.05)

    def new_session(self, within_s: float = 5.0) -> Session:
        """A login to a new account."""
        email = new_email()
        answer = self.post("register", {"email": email, "password": PASSWORD}, within_s=within_s)
        assert answer.outcome == "ok", answer
        answer = self.post("login", {"email": email, "password": PASSWORD}, within_s=within_s)
        assert answer.outcome == "ok", answer
        tokens = json.loads(answer.result["payload"])
        return Session(email, tokens["access_token"], tokens["refresh_token"])

    def user_emails(self) -> set[str]:
        """Every address the users table holds (the database is the suite's own)."""
        with connect(self.mariadb, DATABASE) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT email FROM users")
            return {row[0] for row in cursor.fetchall()}

    def redis_admin(self) -> redis.Redis:
        assert self.redis is not None
        return redis.Redis(port=self.redis.port, socket_timeout=5)

    def repair(self) -> None:
        """Whatever an earlier scenario left broken (it failed half-way): the servers
        running and as configured, the service up with every worker."""
        if self.redis is not None:
            if self.redis.process is None or self.redis.process.poll() is not None:
                self.redis.start()
            self.redis.thaw()
            with self.redis_admin() as admin:
                admin.config_set("maxmemory", 0)
                admin.execute_command("REPLICAOF", "NO", "ONE")
        if self.mariadb.process is None or self.mariadb.process.poll() is not None:
            self.mariadb.start()
        if self.service.process.poll() is not None:
            self.service.stop()
            self.service = self._start_service(self.service.port)
        wait_until(lambda: len(self.workers()) == WORKERS, 20, "every worker up")
        wait_until(lambda: self.http_status("/readyz") == 200, 20, "ready")

    def stop(self) -> None:
        self.probe.close()
        self.service.stop()
