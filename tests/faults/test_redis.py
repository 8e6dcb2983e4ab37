"""Redis faults under load: killed and restarted from its append-only file, frozen past
the store timeout, full, and read-only. Each must be answered SERVICE_UNAVAILABLE
while it lasts, within the bound, and served again within a second of its end."""

from __future__ import annotations

from tests.e2e.processes import free_port
from tests.faults.scenario import Scenario


def test_redis_kill_9_and_restart_from_the_append_only_file(faults):
    with Scenario(faults, "Redis kill -9, restart (AOF)", store="redis") as run:
        run.fault(faults.redis.kill)
        run.hold()
        run.restore(faults.redis.start)  # returns once it accepts connections


def test_redis_frozen_past_the_timeout(faults):
    with Scenario(faults, "Redis frozen (SIGSTOP) 2.5 s, SIGCONT", store="redis") as run:
        run.fault(faults.redis.freeze)
        run.hold()
        run.restore(faults.redis.thaw)


def test_redis_full(faults):
    """maxmemory far below what it holds, with noeviction: every write is refused
    (OOM), reads still work."""
    with faults.redis_admin() as admin:
        admin.config_set("maxmemory-policy", "noeviction")
        with Scenario(faults, "Redis full (maxmemory, noeviction)", store="redis") as run:
            run.fault(lambda: admin.config_set("maxmemory", 1))
            run.hold()
            run.restore(lambda: admin.config_set("maxmemory", 0))


def test_redis_read_only(faults):
    """A replica of a master that is not there (nothing listens on its port): READONLY
    for every write, as a master demoted after a failover answers."""
    nowhere = free_port()
    name = "Redis read-only (REPLICAOF nowhere)"
    with faults.redis_admin() as admin, Scenario(faults, name, store="redis") as run:
        run.fault(lambda: admin.execute_command("REPLICAOF", "127.0.0.1", str(nowhere)))
        run.hold()
        run.restore(lambda: admin.execute_command("REPLICAOF", "NO", "ONE"))
