"""Prometheus metrics on METRICS_PORT: summed across worker processes, and with no
email, token or address in any label."""

from __future__ import annotations

import json
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.processes import ServiceProcess, free_port, wait_for_port
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import LOGIN, ME, PASSWORD, REFRESH, REGISTER, new_email


def scrape(port: int) -> tuple[str, dict[tuple[str, tuple], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return text, samples


def total(samples, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and all((k, v) in sample_labels for k, v in labels.items())
    )


def test_metrics_are_summed_across_workers(tmp_path, mysql_server, redis_server):
    metrics_port = free_port()
    env = production_env(mysql_server, redis_server)
    env |= {"WORKERS": "2", "METRICS_PORT": str(metrics_port)}
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        wait_for_port(metrics_port, 15)
        email = new_email()
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        tokens = json.loads(body["data"]["login"]["payload"])
        service.graphql(LOGIN, {"email": email, "password": "wrong password"})
        for _ in range(6):  # spread over both workers
            service.graphql(ME, token=tokens["access_token"])
        service.graphql(REFRESH, token="forged")
        # A request is counted as it finishes, a moment after its answer is sent.
        deadline = time.monotonic() + 5
        text, samples = scrape(metrics_port)
        while total(samples, "authsvc_requests_total") < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
            text, samples = scrape(metrics_port)
    finally:
        assert service.terminate() == 0
    assert total(samples, "authsvc_requests_total") == 10
    assert total(samples, "authsvc_requests_total", operation="me", outcome="ok") == 6
    assert total(samples, "authsvc_requests_total", operation="refresh",
                 outcome="UNAUTHENTICATED") == 1  # fmt: skip
    assert total(samples, "authsvc_login_failures_total") == 1
    assert total(samples, "authsvc_request_duration_seconds_count", operation="login") == 2
    assert ("authsvc_hashing_backlog", ()) in samples
    assert total(samples, "authsvc_store_pool_connections", state="idle") >= 1
    for secret in (email, PASSWORD, tokens["access_token"], "127.0.0.1"):
        assert secret not in text


def test_single_worker_metrics_and_rate_limits(tmp_path):
    metrics_port = free_port()
    env = {"BCRYPT_ROUNDS": "4", "METRICS_PORT": str(metrics_port),
           "RATE_LIMIT_LOGIN_PER_IP": "2/60"}  # fmt: skip
    service = ServiceProcess(tmp_path, env)
    try:
        email = new_email()
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        for _ in range(3):
            service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        _, samples = scrape(metrics_port)
    finally:
        assert service.terminate() == 0
    assert total(samples, "authsvc_rate_limited_total", scope="login-ip") == 1
    assert total(samples, "authsvc_requests_total", operation="login") == 3
