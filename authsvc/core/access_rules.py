"""What a proxy may demand of a caller beyond a valid token (forward-auth's requirements).

The vocabulary is small on purpose, so that every word is documented and tested:

    confirmed=true           the account's email address is confirmed
    email_domain=a.com,b.org the account's address is at one of these domains (exact,
                             case-insensitive; no suffix matching, so `evil-a.com` and
                             `a.com.evil.org` are not `a.com`)

A word the service does not know is refused (InvalidRequirement), never ignored: a typo
in a proxy's configuration must deny, not silently allow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from authsvc.stores.base import User

#: Each value is bounded: the requirements are read before anyone is authenticated.
MAX_VALUE_CHARS = 512
MAX_DOMAINS = 16


class InvalidRequirement(ValueError):
    """A requirement the service does not understand; ``str()`` names it."""


@dataclass(frozen=True, slots=True)
class Requirements:
    confirmed: bool = False
    email_domains: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]]) -> Requirements:
        """The requirements of ``(name, value)`` pairs; every pair must hold, so a name
        given twice demands both values. Raises InvalidRequirement."""
        confirmed = False
        domains: set[str] | None = None
        for name, value in pairs:
            if len(value) > MAX_VALUE_CHARS:
                raise InvalidRequirement(f"requirement {name} is longer than {MAX_VALUE_CHARS}")
            if name == "confirmed":
                if value not in ("true", "false"):
                    raise InvalidRequirement("requirement confirmed must be true or false")
                confirmed = confirmed or value == "true"
            elif name == "email_domain":
                given = {part.strip().lower() for part in value.split(",") if part.strip()}
                if not given or len(given) > MAX_DOMAINS:
                    raise InvalidRequirement(
                        f"requirement email_domain needs 1 to {MAX_DOMAINS} domains"
                    )
                # Twice: the address must be at a domain of both lists.
                domains = given if domains is None else domains & given
                if not domains:
                    domains = {""}  # no domain is in both: nobody passes
            else:
                raise InvalidRequirement(f"unknown requirement {name[:40]!r}")
        return cls(confirmed=confirmed, email_domains=frozenset(domains or ()))

    def unmet(self, user: User) -> str | None:
        """The name of the first requirement ``user`` does not meet, or None."""
        if self.confirmed and not user.confirmed:
            return "confirmed"
        if self.email_domains:
            domain = user.email.rpartition("@")[2].lower()
            if domain not in self.email_domains:
                return "email_domain"
        return None
