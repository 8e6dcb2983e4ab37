"""Sentinel failovers under load: a manual SENTINEL FAILOVER, then the master killed.
The service follows the master Sentinel names; sessions made before either still
work, and within a second of the new master's promotion requests are served again.

Redis replicates asynchronously, so a failover may drop writes it acknowledged: those
the old master took after the replica's promotion, or those a killed master had not
yet sent on. A session last written then may be gone (UNAUTHENTICATED): Redis promises
no more, and the scenarios count such answers ("w.lost") instead of failing on them,
as long as the service moved to the new master within FOLLOW_S of Sentinel naming it.
Every other session must survive.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from tests.faults.environment import FaultEnv, wait_until
from tests.faults.scenario import Scenario
from tests.stores.redis_topologies import SentinelSetup

#: A write the master acknowledged this long before it was killed may not have reached
#: the replica yet (loopback replication lags by milliseconds; this is generous).
REPLICATION_LAG_S = 0.2
#: Once Sentinel names the new master, the service writes there within this: a write
#: acknowledged by the old master later than that is the service's loss, not Redis's.
FOLLOW_S = 1.0
#: Load after the demotion: every client uses its session again, so that one the
#: resync dropped is seen in this scenario.
AFTER_DEMOTION_S = 1.0


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory) -> Iterator[SentinelSetup]:
    setup = SentinelSetup(tmp_path_factory.mktemp("fault-sentinel"))
    yield setup
    setup.stop()


@pytest.fixture(scope="module")
def sentinel_env(tmp_path_factory, sentinel, fault_mariadb, fault_registrations):
    env = FaultEnv(
        tmp_path_factory.mktemp("fault-sentinel-service"), fault_mariadb, fault_registrations,
        redis_env={
            "REDIS_SENTINELS": f"127.0.0.1:{sentinel.sentinel_port}",
            "REDIS_SENTINEL_MASTER": SentinelSetup.MASTER,
        },
    )  # fmt: skip
    yield env
    env.stop()


def replication(port: int) -> dict:
    try:
        with redis.Redis(port=port, socket_timeout=1) as server:
            return dict(server.info("replication"))  # type: ignore[arg-type]
    except redis.RedisError:
        return {}


def settled(sentinel: SentinelSetup) -> bool:
    """Sentinel names a master that says it is one, and the other server replicates
    it with the link up and nothing left to send: a failover now loses nothing old."""
    master = sentinel.master_port_now()
    other = ({sentinel.master_port, sentinel.replica_port} - {master}).pop()
    on_master, on_replica = replication(master), replication(other)
    return (
        on_master.get("role") == "master"
        and on_replica.get("role") == "slave"
        and on_replica.get("master_port") == master
        and on_replica.get("master_link_status") == "up"
        and on_replica.get("slave_repl_offset") == on_master.get("master_repl_offset")
    )


def test_sentinel_failover_under_load(sentinel, sentinel_env):
    wait_until(lambda: settled(sentinel), 30, "the replica in sync")
    old = sentinel.master_port_now()
    with Scenario(
        sentinel_env, "Sentinel SENTINEL FAILOVER", store="redis", expect_outage=False
    ) as run:
        run.fault()
        sentinel.failover()  # returns once the new master says it is one
        run.restore()
        assert run.marks.fault is not None and run.marks.returned is not None
        run.marks.writes_lost.append((run.marks.fault, run.marks.returned + FOLLOW_S))
        # Until Sentinel demotes it (its next look at the old master, up to 10 s on),
        # the old master takes what is written on connections still open to it; its
        # resync from the new one then drops it. The load goes on until then, so that
        # sessions so lost are seen.
        wait_until(lambda: replication(old).get("role") == "slave", 20, "the old master demoted")
        time.sleep(AFTER_DEMOTION_S)


def test_sentinel_master_kill_9_under_load(sentinel, sentinel_env):
    wait_until(lambda: settled(sentinel), 30, "the replica in sync")
    # New sessions for every client: whatever the failover before did to theirs is
    # that scenario's finding, not this one's.
    sentinel_env.pool.forget_sessions()
    master = sentinel.master_port_now()
    process = sentinel.servers[[sentinel.master_port, sentinel.replica_port].index(master)]
    with Scenario(sentinel_env, "Sentinel master kill -9", store="redis") as run:
        run.fault(process.kill)
        process.wait(10)
        assert run.marks.fault is not None
        run.marks.writes_lost.append((run.marks.fault - REPLICATION_LAG_S, run.marks.fault))
        # Sentinel sees it down after 1 s (down-after-milliseconds), then promotes.
        wait_until(lambda: sentinel.master_port_now() != master, 30, "Sentinel promoted")
        wait_until(lambda: replication(sentinel.master_port_now()).get("role") == "master",
                   10, "the new master")  # fmt: skip
        run.restore()
