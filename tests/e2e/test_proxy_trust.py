"""Client addresses in a real deployment: docker/compose.yaml trusts only nginx's own
address, and `authsvc serve` warns (once) and counts when requests carry forwarding
headers from a peer it does not trust; `check-config` shows what TRUSTED_PROXIES means."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import urllib.request
from pathlib import Path

import yaml

from authsvc.cli import MAX_PROXY_NETWORK_ADDRESSES
from authsvc.settings import parse_networks
from tests.e2e.processes import ServiceProcess, authsvc_command, child_env, free_port

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def test_compose_trusts_only_the_address_of_nginx():
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    trusted = parse_networks(compose["x-authsvc"]["environment"]["TRUSTED_PROXIES"])
    nginx = ipaddress.ip_address(
        compose["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    )
    subnet = ipaddress.ip_network(compose["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert trusted == [ipaddress.ip_network(nginx)]  # one address, not a private range
    assert nginx in subnet
    for network in trusted:
        assert network.num_addresses <= MAX_PROXY_NETWORK_ADDRESSES, network


def test_serve_warns_once_and_counts_forwarded_requests_from_an_untrusted_peer(tmp_path):
    metrics_port = free_port()
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4", "METRICS_PORT": str(metrics_port)})
    try:
        for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
            request = urllib.request.Request(
                service.url,
                data=json.dumps({"query": "{ __typename }"}).encode(),
                headers={"Content-Type": "application/json", header: "for=203.0.113.1"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            samples = r.read().decode()
    finally:
        assert service.terminate() == 0
    assert "authsvc_untrusted_forwarding_total 3.0" in samples
    warnings = [line for line in service.logs().splitlines() if "TRUSTED_PROXIES" in line]
    assert len(warnings) == 1, warnings
    assert "127.0.0.1 is not in TRUSTED_PROXIES" in warnings[0]
    assert "203.0.113.1" not in service.logs()  # what a client wrote is not logged


def check_config(tmp_path: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        authsvc_command("check-config"), cwd=tmp_path, env=child_env(env),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_check_config_says_what_trusted_proxies_means(tmp_path):
    unset = check_config(tmp_path, {"TRUSTED_PROXIES": ""})
    assert "# trusted proxies: none" in unset
    assert "# warning: behind a proxy (nginx, a load balancer) TRUSTED_PROXIES must be set" in (
        unset
    )
    one = check_config(tmp_path, {"TRUSTED_PROXIES": "172.29.81.2"})
    assert "# trusted proxies: 172.29.81.2/32 (X-Forwarded-For and X-Real-IP" in one
    assert "# warning" not in one
    wide = check_config(tmp_path, {"TRUSTED_PROXIES": "172.29.81.2, 10.0.0.0/8"})
    assert "# warning: TRUSTED_PROXIES holds 10.0.0.0/8, a range of 16777216 addresses" in wide
    assert "IPV6_RATE_LIMIT_PREFIX=64" in unset
