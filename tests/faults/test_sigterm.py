"""SIGTERM under load: the service drains and exits 0. Every request sent on a
connection opened before the signal is answered (the drain answers with
`Connection: close`); only connections opened after it may find nothing listening."""

from __future__ import annotations

import pytest

from tests.faults.environment import FaultEnv
from tests.faults.scenario import Scenario


@pytest.fixture
def own_service(tmp_path, fault_mariadb, fault_redis, fault_registrations):
    """A service of this test's own: the shared one must outlive the suite."""
    env = FaultEnv(tmp_path, fault_mariadb, fault_registrations, redis_server=fault_redis)
    yield env
    env.stop()


def test_sigterm_under_load_drains_and_exits_0(own_service):
    with Scenario(
        own_service, "SIGTERM under load (drain)", store=None, expect_outage=False,
        race=False, service_stays=False, after_s=0.5,
    ) as run:  # fmt: skip
        code = run.sigterm()  # returns once the supervisor exited
    logs = "".join(p.read_text() for p in own_service.workdir.glob("service-*/authsvc-*.log"))
    assert code == 0, logs[-3000:]
    assert "Traceback" not in logs, logs[-3000:]
    assert "drain timed out" not in logs, logs[-3000:]
