"""What a proxy may demand of a caller beyond a valid token (forward-auth's requirements).

The vocabulary is small on purpose, so that every word is documented and tested:

    confirmed=true           the account's email address is confirmed
    email_domain=a.com,b.org the account's address is confirmed and at one of these
                             domains (exact, case-insensitive; no suffix matching, so
                             `evil-a.com` and `a.com.evil.org` are not `a.com`)

Both need addresses that are verified: with EMAIL_CONFIRMATION off, every account is
"confirmed" at registration (so that it can log in at all, unlike the Node service's),
and anyone could register alice@corp.com and pass ``email_domain=corp.com``. Without it
they are refused (InvalidRequirement), as is a word the service does not know: a typo
or a promise the service cannot keep must deny, never silently allow.
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
    def parse(
        cls, pairs: Iterable[tuple[str, str]], *, addresses_verified: bool = True
    ) -> Requirements:
        """The requirements of ``(name, value)`` pairs; every pair must hold, so a name
        given twice demands both values. ``addresses_verified``: EMAIL_CONFIRMATION is
        on. Raises InvalidRequirement."""
        result = cls()
        for name, value in pairs:
            if len(value) > MAX_VALUE_CHARS:
                raise InvalidRequirement(f"requirement {name} is longer than {MAX_VALUE_CHARS}")
            if name == "confirmed":
                if value not in ("true", "false"):
                    raise InvalidRequirement("requirement confirmed must be true or false")
                one = cls(confirmed=value == "true")
            elif name == "email_domain":
                given = {part.strip().lower() for part in value.split(",") if part.strip()}
                if not given or len(given) > MAX_DOMAINS:
                    raise InvalidRequirement(
                        f"requirement email_domain needs 1 to {MAX_DOMAINS} domains"
                    )
                # An address at a domain means something only once it is confirmed.
                one = cls(confirmed=True, email_domains=frozenset(given))
            else:
                raise InvalidRequirement(f"unknown requirement {name[:40]!r}")
            if not addresses_verified:
                unverified = "addresses are not verified"
                raise InvalidRequirement(
                    f"requirement {name} needs EMAIL_CONFIRMATION=true ({unverified})"
                )
            result = result.narrowed(one)
        return result

    def narrowed(self, other: Requirements) -> Requirements:
        """Both sets of requirements at once: two domain lists leave the domains in
        both (none in both: nobody passes)."""
        if not self.email_domains or not other.email_domains:
            domains = self.email_domains or other.email_domains
        else:
            domains = (self.email_domains & other.email_domains) or frozenset({""})
        return Requirements(confirmed=self.confirmed or other.confirmed, email_domains=domains)

    def unmet(self, user: User) -> str | None:
        """The name of the first requirement ``user`` does not meet, or None."""
        if self.confirmed and not user.confirmed:
            return "confirmed"
        if self.email_domains:
            domain = user.email.rpartition("@")[2].lower()
            if domain not in self.email_domains:
                return "email_domain"
        return None
