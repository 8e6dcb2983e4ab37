"""Real processes for end-to-end tests: `authsvc serve`, and throwaway MariaDB and Redis
servers on their own ports that a test may stop and start without touching the shared
ones."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout_s: float, process: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The test's environment without any authsvc setting, plus ``extra``."""
    names = ("APP_", "DB_", "JWT_", "REDIS_", "NODE_ENV", "BCRYPT_", "SQLITE_", "STORE_",
             "SMTP_", "EMAIL_", "OUTBOX_")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    return env | extra


def authsvc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "authsvc", *args]


class ServiceProcess:
    """`authsvc serve` as a subprocess on a free loopback port, logs kept in a file."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.cwd = cwd
        self.log_path = cwd / f"authsvc-{self.port}.log"
        self._log = self.log_path.open("w")
        self.env = child_env(env)
        self.process = subprocess.Popen(
            authsvc_command("serve", "--host", "127.0.0.1", "--port", str(self.port)),
            cwd=cwd,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, 30, self.process)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def pids(self) -> list[int]:
        """The serving process and its workers, if it forked any."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *map(int, children)]

    def loaded(self, library: str) -> bool:
        """Whether any of the processes has mapped a file whose path names ``library``."""
        return any(f"/{library}/" in Path(f"/proc/{pid}/maps").read_text() for pid in self.pids())

    def terminate(self, timeout_s: float = 20) -> int:
        """SIGTERM, then wait; returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()

    def logs(self) -> str:
        return self.log_path.read_text()


class ThrowawayRedis:
    """A redis-server of the test's own, keeping nothing on disk unless ``aof``."""

    def __init__(self, workdir: Path, *extra: str, aof: bool = False) -> None:
        """``extra``: more redis-server options, for every start. ``aof``: keep an
        append-only file in ``workdir``, fsynced before every write is acknowledged
        (`appendfsync always`), so that a write a client saw succeed survives a
        ``kill()`` and the next ``start()`` loads it."""
        self.port = free_port()
        self.workdir = workdir
        durability = ("--appendonly", "yes", "--appendfsync", "always") if aof else ()
        self.extra = (*durability, *extra)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 10, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: the server dies at once, as in a crash (no save, no goodbye)."""
        kill_and_reap(self.process)

    def freeze(self) -> None:
        """Stop answering without closing connections, as a hung server does."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


class ThrowawayMariaDB:
    """A mariadbd of the test's own with a data directory in ``workdir``; its data
    survives a stop and start, as a real server's does."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.datadir = workdir / "mariadb"
        self.process: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self, *extra: str) -> None:
        """Start the server; ``extra`` are more mariadbd options (TLS, say)."""
        self.process = subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.datadir}/mysqld.sock",
                "--user=root",
                "--skip-log-bin",
                f"--pid-file={self.datadir}/mysqld.pid",
                "--innodb-buffer-pool-size=16M",
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 60, self.process)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)

    def kill(self) -> None:
        """SIGKILL: the server dies mid-work; the next ``start()`` recovers InnoDB."""
        kill_and_reap(self.process)

    def freeze(self) -> None:
        """Stop answering without closing connections (SIGSTOP), as a hung server or a
        network partition does: the kernel still accepts new connections."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


def kill_and_reap(process: subprocess.Popen[Any] | None) -> None:
    """SIGKILL ``process`` if it still runs, and wait until it is gone."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(10)
