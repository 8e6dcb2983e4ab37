"""The client's address, honouring X-Forwarded-For / X-Real-IP from trusted proxies only.

Rate limits are keyed by client address, so a client must not be able to choose its
own: the headers count only when the connection comes from a configured proxy (nginx
in front), and X-Forwarded-For is read from the right, skipping our own proxies, so
that whatever a client wrote at its left end is ignored. Trust therefore only the
proxies' own addresses: every address in TRUSTED_PROXIES is skipped as "one of ours",
so a client inside a trusted range chooses its own address with X-Forwarded-For.

Per-address limits count an IPv6 client by its network (IPV6_RATE_LIMIT_PREFIX, a /64
by default): one host, or one customer of a provider, commonly holds a whole /64 and
could otherwise take a fresh bucket for every attempt.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping

from authsvc.logs import Throttle

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger(__name__)

#: Headers by which a proxy names the client it forwards (Forwarded: RFC 7239). Only
#: X-Forwarded-For and X-Real-IP are read; any of them from an untrusted peer is noted.
FORWARDING_HEADERS = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


class ClientAddressResolver:
    def __init__(
        self,
        trusted_proxies: list[Network],
        ipv6_prefix: int = 64,
        on_untrusted_forwarding: Callable[[str], None] | None = None,
    ) -> None:
        self._trusted = trusted_proxies
        self._ipv6_prefix = ipv6_prefix
        self._on_untrusted_forwarding = on_untrusted_forwarding

    def resolve(self, peer: str, headers: Mapping[str, str]) -> str:
        """The address of the client behind ``peer`` (the socket's remote address).
        ``headers`` are only believed when ``peer`` is a trusted proxy; from any other
        peer, forwarding headers are reported to ``on_untrusted_forwarding``."""
        if not self._trusted or not self._is_trusted(peer):
            if self._on_untrusted_forwarding is not None and any(
                name in headers for name in FORWARDING_HEADERS
            ):
                self._on_untrusted_forwarding(peer)
            return peer
        forwarded_for = headers.get("X-Forwarded-For")
        real_ip = headers.get("X-Real-IP")
        if forwarded_for:
            hops = [hop.strip() for hop in forwarded_for.split(",")]
            for hop in reversed(hops):
                if not _is_ip(hop):
                    return peer  # a malformed chain: trust none of it
                if not self._is_trusted(hop):
                    return hop
            return hops[0]
        if real_ip and _is_ip(real_ip.strip()):
            return real_ip.strip()
        return peer

    def limit_subject(self, address: str) -> str:
        """What per-address rate limits count for ``address``: an IPv4 address itself
        (also written IPv4-mapped, ``::ffff:a.b.c.d``, by a dual-stack socket), an IPv6
        address's network of the configured prefix."""
        if ":" not in address:  # IPv4: ipaddress accepts its one canonical form only
            return address
        return _ipv6_subject(address, self._ipv6_prefix)

    def _is_trusted(self, address: str) -> bool:
        return in_networks(address, self._trusted)


def in_networks(address: str, networks: list[Network]) -> bool:
    """Whether ``address`` lies in one of ``networks`` (False for what is no address)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class UntrustedForwardingWarning:
    """Counts the requests that carry forwarding headers from a peer that is not a
    trusted proxy, and says so in the log at most once per ``interval_s`` per process.

    The usual cause is a proxy in front with TRUSTED_PROXIES unset (the drop-in case:
    the Node service's nginx and its old .env): every client then has the proxy's
    address, and one client's rate limits are everyone's."""

    def __init__(
        self,
        count: Callable[[], None],
        interval_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        self._interval_s = interval_s
        self._lines = Throttle(interval_s, clock)

    def __call__(self, peer: str) -> None:
        self._count()
        if self._lines.due("untrusted-forwarding") is None:
            return
        log.warning(
            "requests from %s carry X-Forwarded-For, X-Real-IP or Forwarded, but %s is "
            "not in TRUSTED_PROXIES: the headers are ignored and every client behind it "
            "shares its address and per-address rate limits. Behind a proxy, set "
            "TRUSTED_PROXIES to the proxy's own address; without one, clients sent the "
            "headers themselves (logged at most every %d s; counted in "
            "authsvc_untrusted_forwarding_total)",
            peer,
            peer,
            self._interval_s,
        )


@functools.lru_cache(maxsize=4096)
def _ipv6_subject(address: str, prefix: int) -> str:
    """Cached: parsing an IPv6 address and its network costs about 30 µs, a tenth of a
    refresh, on every request; a client's next request finds it here."""
    try:
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, prefix), strict=False))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
