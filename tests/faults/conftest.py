"""The fault suite's servers, shared by its scenarios (each restores what it broke),
and the table of counts per scenario at the end of the run.

Nothing here touches the shared MariaDB and Redis: the suite starts a MariaDB instance
of its own (mariadb-install-db into a temporary directory) and a Redis of its own with
an append-only file fsynced on every write (`appendfsync always`: a session a client
was told it has is on disk, so "sessions made before a Redis restart still work" is a
promise Redis can keep; with the default `everysec` a crash may lose the last second).
A missing binary fails the suite; nothing is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.processes import ThrowawayMariaDB, ThrowawayRedis
from tests.faults.environment import FaultEnv, start_mariadb
from tests.faults.load import Registrations
from tests.faults.report import ROWS, as_json, table

#: Where the table is written as JSON at the end of the run (beside pytest's tmp dirs).
_report_path: list[Path] = []


@pytest.fixture(scope="session")
def fault_registrations() -> Registrations:
    """Every registration of the suite, whichever service it went to."""
    return Registrations()


@pytest.fixture(scope="session")
def fault_mariadb(tmp_path_factory) -> Iterator[ThrowawayMariaDB]:
    server = start_mariadb(tmp_path_factory.mktemp("fault-mariadb"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fault_redis(tmp_path_factory) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path_factory.mktemp("fault-redis"), aof=True)
    server.start()
    yield server
    server.thaw()
    server.stop()


@pytest.fixture(scope="session")
def shared_env(tmp_path_factory, fault_mariadb, fault_redis, fault_registrations):
    env = FaultEnv(
        tmp_path_factory.mktemp("fault-service"), fault_mariadb, fault_registrations,
        redis_server=fault_redis,
    )  # fmt: skip
    yield env
    env.stop()


@pytest.fixture
def faults(shared_env) -> FaultEnv:
    """The shared service and its servers, repaired if an earlier scenario failed
    half-way and left one broken."""
    shared_env.repair()
    return shared_env


@pytest.fixture(scope="session", autouse=True)
def fault_report(tmp_path_factory) -> Iterator[None]:
    yield
    if ROWS:
        path = tmp_path_factory.getbasetemp() / "fault-table.json"
        path.write_text(json.dumps(as_json(ROWS), indent=2))
        _report_path.append(path)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not ROWS:
        return
    terminalreporter.section("fault suite: answers per scenario")
    for line in table(ROWS):
        terminalreporter.write_line(line)
    if _report_path:
        terminalreporter.write_line(f"(as JSON: {_report_path[0]})")
