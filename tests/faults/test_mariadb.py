"""MariaDB faults under load: a clean shutdown and a kill -9, each restarted on its
data directory, and a freeze. Registrations in flight when it went may or may not be stored; every
other one is stored exactly when it was answered 201."""

from __future__ import annotations

from tests.faults.scenario import Scenario


def test_mariadb_stopped_and_started(faults):
    with Scenario(faults, "MariaDB stop (clean), start", store="database") as run:
        run.fault(faults.mariadb.stop, database_gone=True)
        run.hold()
        run.restore(faults.mariadb.start)  # returns once it accepts connections


def test_mariadb_kill_9_and_restart(faults):
    with Scenario(faults, "MariaDB kill -9, restart", store="database") as run:
        run.fault(faults.mariadb.kill, database_gone=True)
        run.hold()
        run.restore(faults.mariadb.start)  # crash recovery, then it accepts connections


def test_mariadb_frozen_past_the_timeout(faults):
    """SIGSTOP: connections stay open and new ones are accepted by the kernel, but
    nothing answers. Calls in flight and calls made during it must time out at
    STORE_TIMEOUT_S like any other; held 4 s so that one that waits for the thaw
    shows far past the bound (inv.ANSWER_BOUND_S, 2.5 s). A registration whose
    INSERT the server had read before it stopped is committed on the thaw: its
    answer (SERVICE_UNAVAILABLE) says the outcome is unknown."""
    with Scenario(faults, "MariaDB frozen (SIGSTOP) 4 s, SIGCONT", store="database") as run:
        run.fault(faults.mariadb.freeze, database_frozen=True)
        run.hold(4.0)
        run.restore(faults.mariadb.thaw)
