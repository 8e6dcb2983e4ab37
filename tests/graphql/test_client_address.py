"""Whose address a request is: X-Forwarded-For / X-Real-IP from trusted proxies only;
an IPv6 client counted by its /64; forwarding headers from anyone else reported."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import REGISTRY
from tornado.httputil import HTTPHeaders

from authsvc.graphql.client_address import ClientAddressResolver, UntrustedForwardingWarning
from authsvc.settings import ConfigError, load_settings, parse_networks
from tests.helpers import LOGIN, PASSWORD, REGISTER, SESSIONS, new_email, raw_post

NGINX = ClientAddressResolver(parse_networks("10.0.0.0/8, 127.0.0.1, ::1"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "real_ip", "client"),
    [
        ("198.51.100.5", "203.0.113.1", None, "198.51.100.5"),  # untrusted peer: ignored
        ("198.51.100.5", None, "203.0.113.1", "198.51.100.5"),
        ("127.0.0.1", "203.0.113.1", None, "203.0.113.1"),
        ("127.0.0.1", "6.6.6.6, 203.0.113.1", None, "203.0.113.1"),  # spoofed left end
        ("127.0.0.1", "203.0.113.1, 10.1.2.3", None, "203.0.113.1"),  # chained proxies
        ("127.0.0.1", "10.1.2.3, 10.4.5.6", None, "10.1.2.3"),  # all ours: the first
        ("127.0.0.1", "not-an-ip, 203.0.113.1", None, "203.0.113.1"),
        ("127.0.0.1", "203.0.113.1, garbage", None, "127.0.0.1"),  # malformed: none
        ("127.0.0.1", None, "203.0.113.2", "203.0.113.2"),
        ("127.0.0.1", None, "junk", "127.0.0.1"),
        ("::1", "2001:db8::1", None, "2001:db8::1"),
        ("127.0.0.1", None, None, "127.0.0.1"),
    ],
)
def test_resolution(peer, forwarded_for, real_ip, client):
    given = {"X-Forwarded-For": forwarded_for, "X-Real-IP": real_ip}
    headers = {name: value for name, value in given.items() if value is not None}
    assert NGINX.resolve(peer, headers) == client


def test_no_trusted_proxies_means_the_peer_always():
    resolver = ClientAddressResolver([])
    headers = {"X-Forwarded-For": "203.0.113.1", "X-Real-IP": "203.0.113.2"}
    assert resolver.resolve("127.0.0.1", headers) == "127.0.0.1"


def test_a_bad_entry_is_a_clear_configuration_error():
    with pytest.raises(ConfigError, match=r"TRUSTED_PROXIES: .*'10\.0\.0\.0/33' is not an IP"):
        load_settings(None, trusted_proxies="127.0.0.1, 10.0.0.0/33")


@pytest.mark.parametrize(
    ("address", "subject"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),  # the same /64: the same bucket
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),  # a dual-stack socket's IPv4 client
        ("", ""),
    ],
)
def test_limit_subject_is_the_ipv6_network(address, subject):
    assert NGINX.limit_subject(address) == subject


def test_the_ipv6_prefix_is_a_setting():
    resolver = ClientAddressResolver([], ipv6_prefix=128)
    assert resolver.limit_subject("2001:db8::1") == "2001:db8::1/128"
    assert ClientAddressResolver([], ipv6_prefix=48).limit_subject("2001:db8:1:2::1") == (
        "2001:db8:1::/48"
    )
    with pytest.raises(ConfigError, match="IPV6_RATE_LIMIT_PREFIX"):
        load_settings(None, ipv6_rate_limit_prefix=16)


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"])
@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Real-IP", "Forwarded", "x-real-ip"])
def test_forwarding_headers_from_an_untrusted_peer_are_reported(trusted, header):
    noted: list[str] = []
    resolver = ClientAddressResolver(parse_networks(trusted), on_untrusted_forwarding=noted.append)
    headers = HTTPHeaders({header: "203.0.113.1"})
    assert resolver.resolve("198.51.100.5", headers) == "198.51.100.5"
    assert resolver.resolve("198.51.100.5", HTTPHeaders()) == "198.51.100.5"  # none: silence
    assert noted == ["198.51.100.5"]


def test_forwarding_headers_from_a_trusted_proxy_are_not_reported():
    noted: list[str] = []
    resolver = ClientAddressResolver(
        parse_networks("10.0.0.1"), on_untrusted_forwarding=noted.append
    )
    assert resolver.resolve("10.0.0.1", HTTPHeaders({"X-Forwarded-For": "203.0.113.1"})) == (
        "203.0.113.1"
    )
    assert noted == []


def test_the_warning_is_logged_at_most_once_per_interval_and_every_request_counted(caplog):
    now = [1000.0]
    counted = []
    warn = UntrustedForwardingWarning(lambda: counted.append(1), 600, lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="authsvc.graphql.client_address"):
        for _ in range(50):
            warn("10.1.2.3")
        now[0] += 599
        warn("10.1.2.3")
        assert len(caplog.records) == 1
        now[0] += 2
        warn("10.1.2.3")
    assert len(caplog.records) == 2 and len(counted) == 52
    text = caplog.records[0].getMessage()
    assert "10.1.2.3 is not in TRUSTED_PROXIES" in text
    assert "set TRUSTED_PROXIES to the proxy's own address" in text


# --- through the app ------------------------------------------------------------------


async def login_over_socket(port: int, email: str, source_ip: str, forwarded_for: str):
    headers = f"Content-Type: application/json\r\nX-Forwarded-For: {forwarded_for}\r\n"
    body = json.dumps({"query": LOGIN, "variables": {"email": email, "password": PASSWORD}})
    _, answer = await raw_post(port, body.encode(), headers.encode(), source_ip=source_ip)
    return answer["data"]["login"]


@pytest.mark.settings(rate_limit_login_per_ip="2/60", trusted_proxies="127.0.0.1")
async def test_a_client_beside_the_proxy_cannot_choose_its_bucket(client, http_server_port):
    """The compose pitfall: a client on the proxy's network (127.0.0.5 here, nginx is
    127.0.0.1) that writes X-Forwarded-For itself is still counted as itself."""
    port = http_server_port[1]
    email = new_email()
    await client.register(email)
    for spoofed in ("9.9.9.1", "9.9.9.2"):
        assert (await login_over_socket(port, email, "127.0.0.5", spoofed))["status"] == 200
    assert (await login_over_socket(port, email, "127.0.0.5", "9.9.9.3"))["status"] == 429
    # The proxy itself is believed: the clients it names have buckets of their own.
    assert (await login_over_socket(port, email, "127.0.0.1", "9.9.9.3"))["status"] == 200


async def register_from(client, address: str) -> dict:
    variables = {"email": new_email(), "password": PASSWORD}
    _, body = await client.post(REGISTER, variables, headers={"X-Forwarded-For": address})
    return body["data"]["register"]


@pytest.mark.settings(rate_limit_register_per_ip="2/60", trusted_proxies="127.0.0.1")
async def test_ipv6_addresses_of_one_64_share_a_bucket(client):
    assert (await register_from(client, "2001:db8:1:2::a"))["status"] == 201
    assert (await register_from(client, "2001:db8:1:2:ffff::b"))["status"] == 201
    assert (await register_from(client, "2001:db8:1:2::c"))["status"] == 429  # same /64
    assert (await register_from(client, "2001:db8:1:3::a"))["status"] == 201  # another


@pytest.mark.settings(rate_limit_login_per_ip="2/60", trusted_proxies="127.0.0.1")
async def test_sessions_keep_the_full_ipv6_address(client):
    email = new_email()
    await client.register(email)
    _, body = await client.post(
        LOGIN,
        {"email": email, "password": PASSWORD},
        headers={"X-Forwarded-For": "2001:db8:1:2::abcd"},
    )
    access = json.loads(body["data"]["login"]["payload"])["access_token"]
    _, body = await client.post(SESSIONS, token=access)
    assert body["data"]["sessions"][0]["ip"] == "2001:db8:1:2::abcd"
    await login_from_address(client, email, "2001:db8:1:2::1")
    assert (await login_from_address(client, email, "2001:db8:1:2::2"))["status"] == 429


async def login_from_address(client, email: str, address: str) -> dict:
    _, body = await client.post(
        LOGIN, {"email": email, "password": PASSWORD}, headers={"X-Forwarded-For": address}
    )
    return body["data"]["login"]


def untrusted_forwarding_count() -> float:
    return REGISTRY.get_sample_value("authsvc_untrusted_forwarding_total") or 0.0


async def test_forwarded_requests_without_trusted_proxies_are_logged_and_counted(client, caplog):
    before = untrusted_forwarding_count()
    with caplog.at_level(logging.WARNING, logger="authsvc.graphql.client_address"):
        for _ in range(3):
            status, _ = await client.post(
                "{ __typename }", headers={"X-Forwarded-For": "203.0.113.1"}
            )
            assert status == 200
        await client.post("{ __typename }")  # no forwarding header: not counted
    warnings = [r for r in caplog.records if "TRUSTED_PROXIES" in r.getMessage()]
    assert len(warnings) == 1  # once per interval, not once per request
    assert "127.0.0.1 is not in TRUSTED_PROXIES" in warnings[0].getMessage()
    assert untrusted_forwarding_count() - before == 3
