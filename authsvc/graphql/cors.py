"""CORS for /graphql: which pages on other origins may call it, and the headers that
tell their browser so (Fetch standard, "CORS protocol").

Only origins listed in CORS_ORIGINS (settings.parse_origins) are answered, by exact
match of the ``Origin`` header, which a browser always sends in the normalized form
that list is kept in. Any other origin gets no CORS header at all, so its browser
keeps the answer from the page. Every answer of /graphql says ``Vary: Origin`` while
CORS is on, those to other origins included: a cache between must not hand one
origin's answer (with or without its Allow-Origin) to another.

Credentials here mean cookies (CORS_ALLOW_CREDENTIALS): a page that sends
``Authorization: Bearer …`` needs no Allow-Credentials, only ``authorization`` among
the allowed headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: What /graphql takes: GET (queries) and POST (everything).
ALLOWED_METHODS = "GET, POST"
#: What a page may send beyond the CORS-safelisted headers: a JSON body, a Bearer
#: token, and its own request id for the logs.
ALLOWED_HEADERS = "content-type, authorization, x-request-id"
#: What a page may read beyond the safelisted answer headers: how long to wait when
#: busy or rate limited, and the id that finds its request in the logs.
EXPOSED_HEADERS = "Retry-After, X-Request-ID"


@dataclass(frozen=True, slots=True)
class CORSPolicy:
    """The origins allowed (normalized), or any (``*``, never with credentials)."""

    origins: frozenset[str]
    any_origin: bool
    credentials: bool
    max_age_s: int

    def allow_origin(self, origin: str | None) -> str | None:
        """What Access-Control-Allow-Origin answers ``origin`` with; None: nothing."""
        if origin is None:
            return None
        if self.any_origin:
            return "*"
        return origin if origin in self.origins else None

    def headers(self, request: Mapping[str, str], *, preflight: bool) -> dict[str, str]:
        """The CORS headers of the answer to a request with these ``request`` headers;
        a ``preflight`` (OPTIONS asking for another method) gets what the browser may
        then send and for how long it may cache that, other answers what the page may
        read."""
        out = {"Vary": "Origin"}
        allowed = self.allow_origin(request.get("Origin"))
        if allowed is None:
            return out
        out["Access-Control-Allow-Origin"] = allowed
        if self.credentials:
            out["Access-Control-Allow-Credentials"] = "true"
        if preflight:
            out["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            out["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            out["Access-Control-Max-Age"] = str(self.max_age_s)
        else:
            out["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return out
