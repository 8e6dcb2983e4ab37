"""`make bench`: authsvc in production configuration on MariaDB + Redis, under loopback
load from wrk, beside a bare Tornado endpoint as this machine's ceiling.

Prints one table (req/s, p50, p90, p99, errors, server CPU per request, peak RSS per
worker, ratio to the ceiling) and writes the same as JSON. `--smoke` runs every
scenario for a second, as `make test` does, so that the benchmark cannot rot.

The ceiling answers the same requests as refresh (a token in the Authorization header
costs Tornado's header parsing about a tenth of a request), with the same event loop
and server settings, so that the ratio is authsvc's own cost. refresh, me and forward-auth
(GET /auth, as nginx's auth_request asks it) are paired
with it round by round (--repeat) and their median round is shown; the smallest
request's ceiling, as the issue first measured it, is shown beside it for reference.

The limits per address and per account are off for the run: every request comes from
127.0.0.1 and the point is throughput, not abuse protection. Refreshes per session are
counted, as in production, against a limit the run never reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import redis

HERE = Path(__file__).resolve().parent
WRK_DIR = HERE / "wrk"
PASSWORD = "bench passphrase 2026"  # noqa: S105 - the bench accounts' own
REGISTER = "mutation($e:String!,$p:String!){register(email:$e,password:$p){status}}"
LOGIN = (
    "mutation($e:String!,$p:String!){login(email:$e,password:$p){tokens{accessToken refreshToken}}}"
)


@dataclass
class Result:
    scenario: str
    connections: int
    rps: float
    ok_rps: float  # answered successfully: not busy, no error
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    busy: int
    cpu_ms_per_request: float
    peak_rss_mb: float
    ratio_to_ceiling: float | None = None
    ratio_to_capacity: float | None = None  # login, register: ok/s ÷ (cores ÷ hash time)
    p99_to_quiet: float | None = None  # refresh beside a flood: p99 ÷ the same load's alone


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing listens on {port}")


def graphql(port: int, query: str, variables: dict[str, Any] | None = None,
            token: str | None = None) -> dict[str, Any]:  # fmt: skip
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", body, headers)
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
        result: dict[str, Any] = json.loads(response.read())
    return result


class Process:
    """A server process and its workers, for CPU time and peak memory."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log.open("w")
        self.popen = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def pids(self) -> list[int]:
        children = Path(f"/proc/{self.popen.pid}/task/{self.popen.pid}/children")
        found = [int(p) for p in children.read_text().split()] if children.exists() else []
        return found or [self.popen.pid]

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in [self.popen.pid, *self.pids()]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def peak_rss_mb(self) -> float:
        peak = 0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        return peak / 1024

    def stop(self) -> int:
        self.popen.send_signal(signal.SIGTERM)
        code = self.popen.wait(60)
        self.log.close()
        return code


def run_wrk(port: int, script: str, connections: int, seconds: float, env: dict[str, str],
            threads: int = 2) -> dict[str, Any]:  # fmt: skip
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(WRK_DIR / script), f"http://127.0.0.1:{port}/graphql",
    ]  # fmt: skip
    full_env = os.environ | env | {"WRK_DIR": str(WRK_DIR), "THREADS": str(threads)}
    out = subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_ERROR "):  # an answer counted as an error, for a look
            print(f"bench: {script} at {connections} connections: {line[10:]}", file=sys.stderr)
        if line.startswith("WRK_RESULT "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("WRK_RESULT "))
            return parsed
    raise SystemExit(f"bench: wrk gave no result:\n{out.stdout}\n{out.stderr}")


def measure(name: str, server: Process, port: int, script: str, connections: int,
            seconds: float, env: dict[str, str]) -> Result:  # fmt: skip
    cpu_before = server.cpu_seconds()
    # A client that honours Retry-After waits on its own connection: the server judges
    # each connection by what it did, so each gets a wrk thread of its own.
    threads = connections if env.get("RETRY_AFTER") == "1" else 2
    raw = run_wrk(port, script, connections, seconds, env, threads)
    cpu = server.cpu_seconds() - cpu_before
    requests = max(raw["requests"], 1)
    return Result(
        scenario=name,
        connections=connections,
        rps=raw["requests"] / (raw["duration_us"] / 1e6),
        ok_rps=(raw["requests"] - raw["busy"] - raw["errors"]) / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        errors=raw["errors"] + raw["socket_errors"],
        busy=raw["busy"],
        cpu_ms_per_request=cpu * 1000 / requests,
        peak_rss_mb=server.peak_rss_mb(),
    )


def hash_seconds(rounds: int) -> float:
    """One bcrypt hash at ``rounds`` on this machine (the median of three)."""
    import bcrypt  # the package's own dependency

    times = []
    for _ in range(3):
        started = time.perf_counter()
        bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds))
        times.append(time.perf_counter() - started)
    return sorted(times)[1]


def mysql_target() -> dict[str, str]:
    url = urlparse(os.environ.get("TEST_DATABASE_URL", "mysql://root@127.0.0.1:3306/test"))
    return {
        "DB_HOST": url.hostname or "127.0.0.1",
        "DB_PORT": str(url.port or 3306),
        "DB_USERNAME": unquote(url.username or "root"),
        "DB_PASSWORD": unquote(url.password or ""),
    }


def sql(target: dict[str, str], statement: str) -> None:
    import pymysql  # the package's own dependency (via aiomysql)

    conn = pymysql.connect(
        host=target["DB_HOST"], port=int(target["DB_PORT"]), user=target["DB_USERNAME"],
        password=target["DB_PASSWORD"], autocommit=True,
    )  # fmt: skip
    with conn:
        conn.cursor().execute(statement)


def delete_keys(redis_url: str, prefix: str) -> None:
    """Remove the run's sessions and counters: they would live on for 30 days."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def prepare_sessions(env: dict[str, str], workdir: Path, count: int) -> list[tuple[str, str]]:
    """(access, refresh) pairs of ``count`` sessions, made by a throwaway server at the
    lowest bcrypt cost (same secrets, database and Redis), so preparing is quick."""
    port = free_port()
    prep = Process(
        [sys.executable, "-m", "authsvc", "serve", "--port", str(port), "--workers", "1"],
        env | {"BCRYPT_ROUNDS": "4"},
        workdir / "prepare.log",
    )
    try:
        wait_for_port(port)
        pairs = []
        users = max(1, count // 4)
        for i in range(users):
            email = f"bench-prep-{i}@example.com"
            graphql(port, REGISTER, {"e": email, "p": PASSWORD})
            for _ in range(4):
                result = graphql(port, LOGIN, {"e": email, "p": PASSWORD})
                tokens = result["data"]["login"]["tokens"]
                pairs.append((tokens["accessToken"], tokens["refreshToken"]))
        return pairs[:count]
    finally:
        prep.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="every scenario for 1 s")
    parser.add_argument("--seconds", type=float, default=10, help="per scenario")
    parser.add_argument("--json", default="bench-results.json", help="where to write results")
    parser.add_argument("--rounds", type=int, default=12, help="BCRYPT_ROUNDS of the server")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of ceiling, refresh, me and forward-auth (medians shown)",
    )
    parser.add_argument(
        "--run-id",
        default=uuid.uuid4().hex[:8],
        help="names the run's database and Redis keys (both removed at the end)",
    )
    parser.add_argument("--flood-only", action="store_true", help="the login flood scenario only")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is needed (apt-get install wrk)")
    seconds = 1.0 if args.smoke else args.seconds
    connection_counts = [32] if args.smoke else [32, 128]
    workers = os.cpu_count() or 1
    hash_s = hash_seconds(args.rounds)
    capacity = workers / hash_s  # hashes per second with every core hashing
    run_id = args.run_id
    database = f"authsvc_bench_{run_id}"
    target = mysql_target()
    workdir = Path(tempfile.mkdtemp(prefix="authsvc-bench-"))
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    env = os.environ | target | {
        "NODE_ENV": "production", "DB_TYPE": "mariadb", "DB_NAME": database,
        "REDIS_URL": redis_url, "REDIS_KEY_PREFIX": f"authsvc-bench-{run_id}:",
        "JWT_ACCESS_SECRET": secrets.token_urlsafe(48),
        "JWT_REFRESH_SECRET": secrets.token_urlsafe(48),
        "BCRYPT_ROUNDS": str(args.rounds), "WORKERS": str(workers), "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT": "off", "RATE_LIMIT_LOGIN_PER_IP": "off",
        "RATE_LIMIT_REGISTER_PER_IP": "off",
        # Counted as in production (in the refresh script itself), never reached.
        "RATE_LIMIT_REFRESH_PER_SESSION": "100000000/60",
    }  # fmt: skip
    sql(target, f"CREATE DATABASE `{database}`")
    results: list[Result] = []
    all_rounds: list[Result] = []  # every run of a repeated scenario, for the JSON
    repeat = 1 if args.smoke else args.repeat
    try:
        subprocess.run([sys.executable, "-m", "authsvc", "migrate"], env=env, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        # The smoke run's 32 connections need no more than a token or two each.
        sessions = prepare_sessions(env, workdir, 64 if args.smoke else 256)
        access_file, refresh_file = workdir / "access.txt", workdir / "refresh.txt"
        renew_file = workdir / "renew.txt"
        access_file.write_text("\n".join(a for a, _ in sessions) + "\n")
        refresh_file.write_text("\n".join(r for _, r in sessions) + "\n")

        ceiling_port = free_port()
        # The ceiling runs on the event loop authsvc runs on (EVENT_LOOP, or its default).
        ceiling = Process([sys.executable, str(HERE / "ceiling.py"), str(ceiling_port),
                           str(workers)], env, workdir / "ceiling.log")  # fmt: skip
        port = free_port()
        server = Process([sys.executable, "-m", "authsvc", "serve", "--port", str(port)], env,
                         workdir / "server.log")  # fmt: skip
        wait_for_port(ceiling_port)
        wait_for_port(port)
        logins = workdir / "emails.txt"
        emails = [f"bench-login-{run_id}-{i}@example.com" for i in range(8)]
        for email in emails:
            graphql(port, REGISTER, {"e": email, "p": PASSWORD})
        logins.write_text("\n".join(emails) + "\n")
        try:
            refresh_request = {"QUERY": "mutation { refresh }", "TOKENS_FILE": str(refresh_file)}
            paired = [
                ("refresh", "graphql.lua", refresh_request),
                ("me", "graphql.lua",
                 {"QUERY": "{ me { id email } }", "TOKENS_FILE": str(access_file)}),
                # What nginx's auth_request asks for every request it guards.
                ("forward-auth", "forward_auth.lua", {"TOKENS_FILE": str(access_file)}),
            ]  # fmt: skip
            single: list[tuple[str, str, dict[str, str]]] = [
                ("renew", "renew.lua", {"TOKENS_FILE": str(renew_file)}),
                # Clients that honour a busy answer's Retry-After.
                ("login", "credentials.lua",
                 {"MODE": "login", "EMAILS_FILE": str(logins), "PASSWORD": PASSWORD,
                  "RETRY_AFTER": "1"}),
                ("register", "credentials.lua",
                 {"MODE": "register", "RUN_ID": run_id, "PASSWORD": PASSWORD,
                  "RETRY_AFTER": "1"}),
            ]  # fmt: skip
            ceilings: dict[int, float] = {}
            for connections in [] if args.flood_only else connection_counts:
                # For reference, the measure: the smallest request.
                results.append(measure("ceiling, small request", ceiling, ceiling_port,
                                       "graphql.lua", connections, seconds,
                                       {"QUERY": "{ ok }"}))  # fmt: skip
                medians, runs = paired_rounds(server, port, ceiling, ceiling_port, connections,
                                              seconds, paired, repeat)  # fmt: skip
                ceilings[connections] = medians[0].rps
                results += medians
                all_rounds += runs
                for name, script, script_env in single:
                    if name == "renew":  # renewal spends tokens: fresh sessions each run
                        fresh = prepare_sessions(env, workdir, connections * 2)
                        renew_file.write_text("\n".join(r for _, r in fresh) + "\n")
                    if name == "register":  # new emails each run: the counters restart
                        script_env = script_env | {"RUN_ID": f"{run_id}-{connections}"}
                    result = measure(name, server, port, script, connections, seconds,
                                     script_env)  # fmt: skip
                    if script == "credentials.lua":
                        result.ratio_to_capacity = result.ok_rps / capacity
                        settle(port, emails[0])
                    else:
                        result.ratio_to_ceiling = result.rps / ceilings[connections]
                    results.append(result)
            if not args.flood_only:
                rows, runs = mixed(server, port, refresh_file, logins, seconds, ceilings, repeat)
                results += rows
                all_rounds += runs
            lead_s = SMOKE_FLOOD_LEAD_S if args.smoke else FLOOD_LEAD_S
            rows, flood_goals = flood(server, port, refresh_file, logins, seconds, capacity,
                                      lead_s)  # fmt: skip
            results += rows
        finally:
            server_code = server.stop()
            ceiling.stop()
    finally:
        sql(target, f"DROP DATABASE IF EXISTS `{database}`")
        delete_keys(redis_url, env["REDIS_KEY_PREFIX"])
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(results, workers, args.rounds, hash_s)
    print_flood_goals(flood_goals)
    print(f"\nceiling, refresh, me and forward-auth: the median of {repeat} rounds; in "
          "each round the ceiling answers refresh's requests\nand those three follow at "
          "once, each ÷ that round's ceiling. The other scenarios ÷ the median ceiling."
          f"\nrefresh (during logins): the round of median p99 of {repeat}.")  # fmt: skip
    Path(args.json).write_text(json.dumps(
        {"workers": workers, "bcrypt_rounds": args.rounds, "seconds": seconds,
         "hash_seconds": hash_s, "capacity_per_second": capacity, "repeat": repeat,
         "flood": flood_goals,
         "results": [asdict(r) for r in results],
         "rounds": [asdict(r) for r in all_rounds]}, indent=2))  # fmt: skip
    print(f"\nwritten to {args.json}")
    return 0 if server_code == 0 else 1


CEILING = "ceiling, refresh's request"

T = TypeVar("T")


def median_by(runs: list[T], key: Callable[[T], float]) -> T:
    """The run in the middle when ordered by ``key`` (the upper one of an even count)."""
    return sorted(runs, key=key)[len(runs) // 2]


def paired_rounds(server: Process, port: int, ceiling: Process, ceiling_port: int,
                  connections: int, seconds: float,
                  scenarios: list[tuple[str, str, dict[str, str]]],
                  repeat: int) -> tuple[list[Result], list[Result]]:  # fmt: skip
    """The ceiling, answering the first scenario's requests, then each scenario right
    after it, ``repeat`` times: each ratio is taken against the ceiling run just before
    it, so that the machine's drift between runs does not enter the ratio. Returns the
    median round of the ceiling (by req/s) and of each scenario (by ratio), and every run."""
    runs: dict[str, list[Result]] = {CEILING: []} | {name: [] for name, _, _ in scenarios}
    for _ in range(repeat):
        top = measure(CEILING, ceiling, ceiling_port, scenarios[0][1], connections, seconds,
                      scenarios[0][2])  # fmt: skip
        runs[CEILING].append(top)
        for name, script, script_env in scenarios:
            result = measure(name, server, port, script, connections, seconds, script_env)
            result.ratio_to_ceiling = result.rps / top.rps
            runs[name].append(result)
    medians = [median_by(runs[CEILING], lambda r: r.rps)]
    medians += [
        median_by(runs[name], lambda r: r.ratio_to_ceiling or 0) for name, _, _ in scenarios
    ]
    return medians, [run for group in runs.values() for run in group]


def settle(port: int, email: str, timeout_s: float = 60) -> None:
    """Wait until the hashes that wrk left queued when it stopped are done (a client
    that hangs up does not take back its login), so the next scenario starts clean."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = graphql(port, LOGIN, {"e": email, "p": PASSWORD})["data"]["login"]
        if status and status.get("tokens"):
            return
        time.sleep(0.5)


def mixed(server: Process, port: int, refresh_file: Path, logins: Path, seconds: float,
          ceilings: dict[int, float],
          repeat: int) -> tuple[list[Result], list[Result]]:  # fmt: skip
    """refresh measured while logins saturate the hashing pool (login isolation): beside
    clients that honour Retry-After (``repeat`` rounds: the round of median refresh p99
    is shown, p99 being as noisy as it is), then beside a flood that ignores it. Returns
    the rows and every round."""
    results: list[Result] = []
    rounds: list[Result] = []
    for label, login_connections, login_env, times in (
        ("logins", 128, {"RETRY_AFTER": "1"}, repeat),
        ("login flood", 32, {}, 1),  # each busy answer is followed by the next request at once
    ):
        env = {"MODE": "login", "EMAILS_FILE": str(logins), "PASSWORD": PASSWORD} | login_env
        pairs = [
            beside_logins(server, port, label, login_connections, env, refresh_file, seconds,
                          ceilings)
            for _ in range(times)
        ]  # fmt: skip
        rounds += [run for pair in pairs for run in pair]
        results += median_by(pairs, lambda pair: pair[0].p99_ms)
    return results, rounds


def beside_logins(server: Process, port: int, label: str, login_connections: int,
                  login_env: dict[str, str], refresh_file: Path, seconds: float,
                  ceilings: dict[int, float]) -> tuple[Result, Result]:  # fmt: skip
    """refresh at the smaller connection count while wrk drives logins: (refresh, logins)."""
    import threading

    login_result: list[Result] = []

    def logins_run() -> None:
        login_result.append(measure(f"{label} (during refresh)", server, port,
                                    "credentials.lua", login_connections, seconds + 1,
                                    login_env))  # fmt: skip

    thread = threading.Thread(target=logins_run)
    thread.start()
    time.sleep(0.5)
    connections = min(ceilings)
    refresh = measure(f"refresh (during {label})", server, port, "graphql.lua", connections,
                      seconds, {"QUERY": "mutation { refresh }",
                                "TOKENS_FILE": str(refresh_file)})  # fmt: skip
    refresh.ratio_to_ceiling = refresh.rps / ceilings[connections]
    thread.join()
    settle(port, Path(login_env["EMAILS_FILE"]).read_text().split()[0])
    return refresh, login_result[0]


FLOOD_CONNECTIONS = 64
POLITE_CONNECTIONS = 4
FLOOD_LEAD_S = 2.0  # the flood alone, before the others start
#: The smoke run's lead: at the smoke test's bcrypt cost (4 rounds) the flood's first
#: logins are done in well under a second, and the flood (lead + seconds + 0.5, a
#: whole number of seconds for wrk) still outlasts the clients started beside it.
SMOKE_FLOOD_LEAD_S = 0.5
#: refresh beside the flood: a steady load (each connection waits 20 ms between
#: requests, a fifth or so of what the server can answer), since a refresh load that
#: takes every core leaves none for hashing, whatever the flood does.
PACED_REFRESH = {"QUERY": "mutation { refresh }", "DELAY_MS": "20"}
PACED_CONNECTIONS = 32


def flood(server: Process, port: int, refresh_file: Path, logins: Path, seconds: float,
          capacity: float, lead_s: float = FLOOD_LEAD_S,
          ) -> tuple[list[Result], dict[str, Any]]:  # fmt: skip
    """A flood of logins that ignores busy answers (each followed by the next request
    at once), with a few clients beside it that honour Retry-After; then the same with
    a steady refresh load, against that refresh load alone. Returns the rows and the
    issue's goals (successful logins ÷ capacity, the polite clients' p99, refresh p99 ÷
    quiet), all measured in this run."""
    from polite import run_polite  # loadtests/polite.py, beside this file

    emails = logins.read_text().split()
    paced = PACED_REFRESH | {"TOKENS_FILE": str(refresh_file)}
    quiet = measure("refresh, paced", server, port, "graphql.lua", PACED_CONNECTIONS,
                    seconds, paced)  # fmt: skip
    rows = [quiet]
    goals: dict[str, Any] = {"quiet_refresh_p99_ms": quiet.p99_ms}
    for with_refresh in (False, True):
        label = "+ paced refresh" if with_refresh else "alone"
        env = {"MODE": "login", "EMAILS_FILE": str(logins), "PASSWORD": PASSWORD}
        flooding, flood_result = in_thread(measure, f"login flood ({label})", server, port,
                                           "credentials.lua", FLOOD_CONNECTIONS,
                                           seconds + lead_s + 0.5, env)  # fmt: skip
        time.sleep(lead_s)  # the flood is on, its first logins (all at once) done
        politely, polite_result = in_thread(run_polite, port, emails, PASSWORD,
                                            POLITE_CONNECTIONS, seconds)  # fmt: skip
        refresh = None
        if with_refresh:
            refresh = measure("refresh, paced (during flood)", server, port, "graphql.lua",
                              PACED_CONNECTIONS, seconds, paced)  # fmt: skip
            refresh.p99_to_quiet = refresh.p99_ms / max(quiet.p99_ms, 1e-3)
        politely.join()
        flooding.join()
        settle(port, emails[0])
        polite, flooded = polite_result[0], flood_result[0]
        flooded.ratio_to_capacity = flooded.ok_rps / capacity
        polite_ok = len(polite.login_s) / seconds
        polite_row = Result(
            scenario=f"polite logins ({label})", connections=POLITE_CONNECTIONS,
            rps=polite.attempts / seconds, ok_rps=polite_ok,
            p50_ms=polite.percentile(0.5) * 1000, p90_ms=polite.percentile(0.9) * 1000,
            p99_ms=polite.percentile(0.99) * 1000, errors=polite.errors, busy=polite.refused,
            cpu_ms_per_request=0.0, peak_rss_mb=server.peak_rss_mb(),
            ratio_to_capacity=polite_ok / capacity,
        )  # fmt: skip
        rows += [flooded, polite_row]
        goal = {
            "logins_to_capacity": flooded.ratio_to_capacity + polite_row.ratio_to_capacity,
            "polite_logins": len(polite.login_s), "polite_unfinished": len(polite.unfinished_s),
            "polite_p99_s": polite.percentile(0.99),
        }  # fmt: skip
        if refresh is not None:
            rows.append(refresh)
            goal["refresh_p99_to_quiet"] = refresh.p99_to_quiet
        goals["with_refresh" if with_refresh else "alone"] = goal
    return rows, goals


def in_thread(fn: Callable[..., T], *args: Any) -> tuple[Any, list[T]]:
    """``fn(*args)`` on a thread started now, and the list its result will be put in."""
    import threading

    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)))
    thread.start()
    return thread, result


def print_flood_goals(goals: dict[str, Any]) -> None:
    alone, beside = goals["alone"], goals["with_refresh"]
    print(
        f"\nlogin flood ({FLOOD_CONNECTIONS} connections ignoring busy answers) beside "
        f"{POLITE_CONNECTIONS} clients honouring Retry-After:\n"
        f"  successful logins ÷ capacity: {alone['logins_to_capacity']:.2f} (goal ≥ 0.80; "
        f"{beside['logins_to_capacity']:.2f} with the paced refresh beside)\n"
        f"  polite clients' login p99, retries included: {alone['polite_p99_s']:.2f} s "
        f"({alone['polite_logins']} logins, {alone['polite_unfinished']} unfinished; "
        f"goal ≤ 5 s; {beside['polite_p99_s']:.2f} s with the refresh beside)\n"
        f"  paced refresh p99 ÷ the same load alone: {beside['refresh_p99_to_quiet']:.2f} "
        f"({goals['quiet_refresh_p99_ms']:.2f} ms alone; goal ≤ 2)"
    )


def print_table(results: list[Result], workers: int, rounds: int, hash_s: float) -> None:
    print(
        f"\nauthsvc bench: {workers} workers, {os.cpu_count()} cores, bcrypt {rounds} rounds "
        f"({hash_s * 1000:.0f} ms a hash: capacity {workers / hash_s:.1f} hashes/s)\n"
    )
    header = (f"{'scenario':32} {'conns':>5} {'req/s':>9} {'ok/s':>9} {'p50 ms':>8} {'p90 ms':>8} "
              f"{'p99 ms':>8} {'errors':>6} {'busy':>6} {'cpu ms/req':>10} {'rss MB':>7} "
              f"{'÷ceiling':>8} {'÷capacity':>9} {'p99÷quiet':>9}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in results:
        ratio = f"{r.ratio_to_ceiling:.2f}" if r.ratio_to_ceiling is not None else "-"
        capacity = f"{r.ratio_to_capacity:.2f}" if r.ratio_to_capacity is not None else "-"
        quiet = f"{r.p99_to_quiet:.2f}" if r.p99_to_quiet is not None else "-"
        print(f"{r.scenario:32} {r.connections:>5} {r.rps:>9.1f} {r.ok_rps:>9.1f} {r.p50_ms:>8.2f} "
              f"{r.p90_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>6} {r.busy:>6} "
              f"{r.cpu_ms_per_request:>10.3f} {r.peak_rss_mb:>7.1f} {ratio:>8} "
              f"{capacity:>9} {quiet:>9}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
