"""A worker killed with SIGKILL, in normal running and during each store's outage: it
is replaced, the other keeps serving, and the service recovers when the store returns.
Only the requests on the dead worker's connections may go unanswered."""

from __future__ import annotations

import time

from tests.faults.scenario import FAULT_S, Scenario

#: An outage lasts this long before the worker is killed: long enough for every store
#: call to have failed or timed out (STORE_TIMEOUT_S).
OUTAGE_BEFORE_KILL_S = 1.0


def test_worker_kill_9_in_normal_running(faults):
    with Scenario(faults, "worker kill -9", store=None, expect_outage=False) as run:
        run.kill_worker()  # returns once a replacement runs
        run.restore(at=run.marks.kills[-1][1])  # measured from the death
        run.hold()


def test_worker_kill_9_while_redis_is_down(faults):
    with Scenario(faults, "worker kill -9 while Redis is down", store="redis") as run:
        run.fault(faults.redis.kill)
        time.sleep(OUTAGE_BEFORE_KILL_S)
        run.kill_worker()
        run.hold(FAULT_S + OUTAGE_BEFORE_KILL_S)
        run.restore(faults.redis.start)


def test_worker_kill_9_while_mariadb_is_down(faults):
    with Scenario(faults, "worker kill -9 while MariaDB is down", store="database") as run:
        run.fault(faults.mariadb.stop, database_gone=True)
        time.sleep(OUTAGE_BEFORE_KILL_S)
        run.kill_worker()
        run.hold(FAULT_S + OUTAGE_BEFORE_KILL_S)
        run.restore(faults.mariadb.start)
