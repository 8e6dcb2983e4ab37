"""MariaDB faults under load: a clean shutdown and a kill -9, each restarted on its
data directory. Registrations in flight when it went may or may not be stored; every
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
