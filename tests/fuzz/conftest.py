"""A real `authsvc serve` on the embedded default for the fuzz suites, and a fingerprint
of its users and sessions to show that refused requests change nothing."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.processes import ServiceProcess

#: Examples per fuzz test: bounded in `make test`, larger in `make fuzz`.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))


class FuzzTarget:
    def __init__(self, service: ServiceProcess, database: Path) -> None:
        self.service = service
        self.database = database

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    def fingerprint(self) -> str:
        """A digest of every user and session row (not rate-limit counters)."""
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            rows = [
                conn.execute("SELECT * FROM users ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM sessions ORDER BY id").fetchall(),
            ]
        finally:
            conn.close()
        return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture(scope="session")
def fuzz_target(tmp_path_factory) -> Iterator[FuzzTarget]:
    workdir = tmp_path_factory.mktemp("fuzz")
    service = ServiceProcess(workdir, {"BCRYPT_ROUNDS": "4", "LOG_LEVEL": "WARNING"})
    try:
        yield FuzzTarget(service, workdir / ".authsvc" / "authsvc.sqlite3")
        assert service.terminate() == 0
    finally:
        service.stop()  # a worker stuck in a request must not outlive the suite
    # Refusals are answered, never raised: no unexpected error reached the log.
    logs = service.logs()
    assert "uncaught exception" not in logs and "unexpected error" not in logs


def refused(status: int, body: Any) -> bool:
    """Whether the request was turned away as a whole: an HTTP error, no data, or every
    root field null or a MutationResponse with a failure status."""
    if status >= 400 or not isinstance(body, dict) or body.get("data") is None:
        return True
    values = body["data"].values()
    return all(v is None or (isinstance(v, dict) and v.get("status", 200) >= 400) for v in values)


def assert_no_leak(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text
