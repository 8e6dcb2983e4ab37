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
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder), *options],
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
        self.ports = [cluster_port() for _ in range(3)]
        self.processes = [
            _server(folder / str(port), port, "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
            for port in self.ports
        ]  # fmt: skip
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        # Every node must see the cluster whole: one that does not yet answers CLUSTERDOWN.
        for port in self.ports:
            node = redis.Redis(port=port, decode_responses=True)
            _until(lambda: node.cluster("info")["cluster_state"] == "ok")  # type: ignore[index]  # noqa: B023
            node.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(10)


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
        watcher = redis.Redis(port=self.sentinel_port, decode_responses=True)
        try:
            address = watcher.sentinel_get_master_addr_by_name(self.MASTER)
            assert isinstance(address, tuple | list)
            return int(address[1])
        finally:
            watcher.close()

    def failover(self) -> None:
        """A manual failover: the replica becomes the master."""
        before = self.master_port_now()
        watcher = redis.Redis(port=self.sentinel_port)
        watcher.execute_command("SENTINEL", "FAILOVER", self.MASTER)
        watcher.close()
        _until(lambda: self.master_port_now() != before)
        master = redis.Redis(port=self.master_port_now())
        _until(lambda: master.info("replication")["role"] == "master")
        master.close()

    def stop(self) -> None:
        for process in [self.sentinel, *self.servers]:
            process.terminate()
            process.wait(10)
