"""Whose address a request is: X-Forwarded-For / X-Real-IP from trusted proxies only."""

from __future__ import annotations

import pytest

from authsvc.graphql.client_address import ClientAddressResolver
from authsvc.settings import ConfigError, load_settings, parse_networks

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
