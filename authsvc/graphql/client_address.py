"""The client's address, honouring X-Forwarded-For / X-Real-IP from trusted proxies only.

Rate limits are keyed by client address, so a client must not be able to choose its
own: the headers count only when the connection comes from a configured proxy (nginx
in front), and X-Forwarded-For is read from the right, skipping our own proxies, so
that whatever a client wrote at its left end is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddressResolver:
    def __init__(self, trusted_proxies: list[Network]) -> None:
        self._trusted = trusted_proxies

    def resolve(self, peer: str, headers: Mapping[str, str]) -> str:
        """The address of the client behind ``peer`` (the socket's remote address).
        ``headers`` are only read when ``peer`` is a trusted proxy."""
        if not self._trusted or not self._is_trusted(peer):
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

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
