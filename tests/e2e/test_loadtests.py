"""The load tests cannot rot: a short headless Locust run against a real server, and
a smoke run of `make bench` (every scenario for a second)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import redis

from tests.e2e.processes import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]


def test_locust_headless_run(tmp_path):
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4"})
    try:
        result = subprocess.run(
            [
                sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
                "--headless", "-u", "4", "-r", "4", "-t", "3s", "--stop-timeout", "2",
                "--host", f"http://127.0.0.1:{service.port}", "--csv", str(tmp_path / "run"),
                "--exit-code-on-error", "1",
            ],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
    finally:
        assert service.terminate() == 0
    assert result.returncode == 0, result.stderr[-2000:]
    with (tmp_path / "run_stats.csv").open() as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    for name in ("register", "login", "me"):
        assert int(rows[name]["Request Count"]) > 0, rows
    assert int(rows["Aggregated"]["Failure Count"]) == 0


def test_bench_smoke(tmp_path, run_id, mysql_server, redis_server):
    assert shutil.which("wrk"), "wrk is needed: .ci/run installs it (apt-get install wrk)"
    out = tmp_path / "bench.json"
    bench_id = f"{run_id}-smoke"
    result = subprocess.run(
        [sys.executable, str(ROOT / "loadtests" / "bench.py"), "--smoke", "--rounds", "4",
         "--json", str(out), "--run-id", bench_id],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The run removes what it made: its database and its sessions (30-day TTLs).
    with redis.Redis.from_url(redis_server.url) as client:
        left = client.keys(f"authsvc-bench-{bench_id}:*")
    assert left == [], f"{len(left)} keys left behind"
    with mysql_server.connect() as conn:
        cursor = conn.cursor()
        cursor.execute("SHOW DATABASES LIKE %s", (f"authsvc_bench_{bench_id}",))
        assert cursor.fetchall() == ()
    written = json.loads(out.read_text())
    results = {(r["scenario"], r["connections"]): r for r in written["results"]}
    for scenario in ("ceiling, small request", "ceiling, refresh's request", "refresh", "renew",
                     "me", "forward-auth", "login", "register"):  # fmt: skip
        measured = results[(scenario, 32)]
        assert measured["rps"] > 0 and measured["errors"] == 0, measured
        assert measured["peak_rss_mb"] > 0
    assert results[("refresh (during login flood)", 32)]["errors"] == 0
    # The flood that ignores busy answers, a few clients honouring Retry-After beside it,
    # then a paced refresh load beside both, against that load alone: shown as ratios.
    for scenario, connections in (
        ("login flood (alone)", 64),
        ("polite logins (alone)", 4),
        ("refresh, paced", 32),
        ("refresh, paced (during flood)", 32),
    ):
        measured = results[(scenario, connections)]
        assert measured["rps"] > 0 and measured["errors"] == 0, measured
    flood = written["flood"]
    assert flood["alone"]["logins_to_capacity"] > 0 and flood["alone"]["polite_logins"] > 0
    paced = results[("refresh, paced (during flood)", 32)]
    assert flood["with_refresh"]["refresh_p99_to_quiet"] == paced["p99_to_quiet"] > 0
    assert "successful logins ÷ capacity" in result.stdout and "p99÷quiet" in result.stdout
    # Paired rounds: refresh's ratio is taken against the ceiling run just before it.
    rounds = [r["scenario"] for r in written["rounds"]]
    assert rounds[:3] == ["ceiling, refresh's request", "refresh", "me"]
    ceiling = results[("ceiling, refresh's request", 32)]["rps"]
    refresh = results[("refresh", 32)]
    assert refresh["ratio_to_ceiling"] == refresh["rps"] / ceiling
    assert "req/s" in result.stdout and "÷ceiling" in result.stdout
