"""Real Redis topologies on loopback ports, started by the tests themselves from
redis-server: a three-master Redis Cluster, and a master with a replica watched by a
Sentinel (redis-server in sentinel mode)."""

from __future__ import annotations

import random
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.e2e.processes import free_port, wait_for_port


def _server(folder: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    """A redis-server on ``port``. A master sends a replica its full sync at once, not
    after the default five seconds of waiting for more replicas to join it."""
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder), "--repl-diskless-sync-delay", "0",
         *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port, 10, process)
    return process


def _until(condition, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the Redis topology did not settle")
        time.sleep(0.1)


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


class Cluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = [cluster_port() for _ in range(3)]
        self.processes = [self._node(port) for port in self.ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.settle()

    def _node(self, port: int) -> subprocess.Popen[bytes]:
        options = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                   "--cluster-node-timeout", "2000")  # fmt: skip
        return _server(self.folder / str(port), port, *options)

    def settle(self) -> None:
        """Wait until every node sees the cluster whole: one that does not yet answers
        CLUSTERDOWN."""
        for port in self.ports:
            node = redis.Redis(port=port, decode_responses=True)
            _until(lambda: node.cluster("info")["cluster_state"] == "ok")  # type: ignore[index]  # noqa: B023
            node.close()

    def restart(self, index: int) -> None:
        """Kill node ``index`` (SIGKILL) and start it again: it keeps its identity and
        slots (nodes.conf), not its data, and closes every connection it had."""
        self.processes[index].kill()
        self.processes[index].wait(10)
        self.processes[index] = self._node(self.ports[index])
        self.settle()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(10)


def _replica_online(replication: dict) -> bool:
    replica = replication.get("slave0") or {}
    return replication["role"] == "master" and replica.get("state") == "online"


def _failover_accepted(watcher: redis.Redis, master: str) -> bool:
    try:
        watcher.execute_command("SENTINEL", "FAILOVER", master)
    except redis.ResponseError as refused:
        if "NOGOODSLAVE" not in str(refused):
            raise
        return False
    return True


class SentinelSetup:
    MASTER = "authsvc-test"

    def __init__(self, folder: Path) -> None:
        self.master_port, self.replica_port, self.sentinel_port = (free_port() for _ in range(3))
        self.servers = [
            _server(folder / "master", self.master_port),
            _server(folder / "replica", self.replica_port,
                    "--replicaof", "127.0.0.1", str(self.master_port)),
        ]  # fmt: skip
        replica = redis.Redis(port=self.replica_port)
        _until(lambda: replica.info("replication")["master_link_status"] == "up")
        replica.close()
        config = folder / "sentinel.conf"
        config.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\n"
            f"sentinel monitor {self.MASTER} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
            f"sentinel failover-timeout {self.MASTER} 5000\n"
        )
        self.sentinel = subprocess.Popen(
            ["redis-server", str(config), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.sentinel_port, 10, self.sentinel)
        watcher = redis.Redis(port=self.sentinel_port)
        _until(lambda: int(watcher.sentinel_master(self.MASTER)["num-slaves"]) == 1)  # type: ignore[index]
        watcher.close()

    def master_port_now(self) -> int:
        """The master's port once Sentinel has switched to it. Not GET-MASTER-ADDR-BY-NAME:
        during a failover that already names the replica being promoted, while SENTINEL
        MASTERS (what redis-py's client asks) still names the old master."""
        watcher = redis.Redis(port=self.sentinel_port, decode_responses=True)
        try:
            state = watcher.sentinel_master(self.MASTER)
            assert isinstance(state, dict)
            if "failover_in_progress" in state["flags"]:
                return 0  # neither the old master nor yet the new one
            return int(state["port"])
        finally:
            watcher.close()

    def failover(self) -> None:
        """A manual failover: the replica becomes the master."""
        before = self.master_port_now()
        watcher = redis.Redis(port=self.sentinel_port)
        # Right after an earlier failover, Sentinel may not yet count the demoted master
        # as a replica fit to promote (NOGOODSLAVE) until it has seen its link up.
        _until(lambda: _failover_accepted(watcher, self.MASTER))
        watcher.close()
        _until(lambda: self.master_port_now() not in (0, before))
        # Sentinel demotes the old master only on its next look at it (up to 10 s):
        # done here at once, as Sentinel would, without closing its clients'
        # connections. Then settled: the new master has its replica online, so the next
        # test neither writes to two masters nor loses writes.
        demoted = redis.Redis(port=before)
        demoted.replicaof("127.0.0.1", self.master_port_now())
        demoted.close()
        master = redis.Redis(port=self.master_port_now(), decode_responses=True)
        _until(lambda: _replica_online(master.info("replication")))
        master.close()

    def stop(self) -> None:
        for process in [self.sentinel, *self.servers]:
            process.terminate()
            process.wait(10)
