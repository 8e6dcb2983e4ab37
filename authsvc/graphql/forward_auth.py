"""GET/HEAD /auth: forward-auth for nginx ``auth_request`` and Traefik ForwardAuth.

The proxy asks with the client's request headers; authsvc answers 200 with the caller's
identity in headers the proxy copies onto the upstream request, 401 (with the RFC 6750
challenge) when there is no valid token, 403 when a requirement is not met. A hot path
like ``me``: no GraphQL, one session-store round trip (the user row comes from the
sessions' short cache, see SessionService._recent_user).

Requirements come from the query string (``/auth?confirmed=true``) and from
``X-Auth-Require-<Name>`` headers. nginx passes the client's own headers on to the
subrequest too, so a client can send such a header itself: every requirement must hold
(they only ever add up), so a client can only make its own request stricter, and a
header authsvc cannot read denies that request (403) rather than fail it (nginx makes
any answer but 2xx, 401 and 403 a 500).

A token from the cookie (FORWARD_AUTH_COOKIE) rides along with any request a browser
sends, a cross-site form's too: a request that changes something (its method, from the
proxy's X-Forwarded-Method, which must be sent; a WebSocket) is refused unless the
browser says it is same-origin (Sec-Fetch-Site, or else an Origin that is the request's
own origin: PUBLIC_URL's, or the forwarded scheme and host).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from authsvc.core.access_rules import InvalidRequirement, Requirements
from authsvc.core.errors import Unauthorized
from authsvc.graphql.context import bearer_token
from authsvc.graphql.errors import UNAVAILABLE_RETRY_S, note_store_unavailable
from authsvc.graphql.http import JSONHandler
from authsvc.services import Services
from authsvc.settings import normalize_origin
from authsvc.stores.base import StoreUnavailable

#: Headers the proxy sets to demand more (lower-cased, as compared).
REQUIREMENT_PREFIX = "x-auth-require-"
#: A longer value is no token of ours: refused before any work (an access token is
#: a few hundred characters).
MAX_TOKEN_CHARS = 4096
#: The identity headers, ours and the names oauth2-proxy uses (--set-xauthrequest), so
#: that upstreams configured for it work unchanged.
USER_ID_HEADERS = ("X-Auth-User-Id", "X-Auth-Request-User")
EMAIL_HEADERS = ("X-Auth-Email", "X-Auth-Request-Email")
SESSION_HEADER = "X-Auth-Session-Id"
#: Methods that change nothing (RFC 9110 §9.2.1): a cookie may carry them cross-site.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: What Sec-Fetch-Site says of a request that a cross-site page did not make.
OWN_SITE = frozenset({"same-origin", "none"})


@dataclass(slots=True)
class AuthHeaders:
    """What the request's X-Auth-* headers say: the requirements (name, value), the
    requirement headers' names (for Vary), and the first other X-Auth-* name, which is
    the client's own (None: none came)."""

    requirements: list[tuple[str, str]] = field(default_factory=list)
    requirement_names: set[str] = field(default_factory=set)
    identity: str | None = None


class ForwardAuthHandler(JSONHandler):
    operation = "forward_auth"

    def initialize(
        self,
        services: Services,
        cookie: str | None,
        cache_s: int,
        addresses_verified: bool,
        public_origin: str | None = None,
    ) -> None:
        """``public_origin``: PUBLIC_URL's origin, what a same-origin request's Origin
        is (else the forwarded scheme and host)."""
        self.public_origin = public_origin
        self.services = services
        self.cookie = cookie
        self.cache_s = cache_s
        self.addresses_verified = addresses_verified
        self.from_cookie = False

    def compute_etag(self) -> None:
        # Every pass has the same empty body: an ETag would let If-None-Match turn it
        # into a 304, which nginx's auth_request takes for an error.
        return None

    async def head(self) -> None:
        await self.get()

    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")  # every answer but a cacheable 200
        token = self._token()
        if token is None:
            self.set_header("WWW-Authenticate", 'Bearer realm="authsvc"')
            self._deny(401, "no_token", "Unauthorized")
            return
        try:
            caller = await self.services.sessions.authenticate(token)
        except Unauthorized:
            self.set_header("WWW-Authenticate", 'Bearer realm="authsvc", error="invalid_token"')
            self._deny(401, "invalid_token", "Unauthorized")
            return
        except StoreUnavailable as exc:
            note_store_unavailable(exc, self.request_id)
            self.set_header("Retry-After", str(UNAVAILABLE_RETRY_S))
            self._deny(503, "store_unavailable", "Service temporarily unavailable, retry later")
            return
        try:
            requirements = Requirements.parse(
                self._query_requirements(), addresses_verified=self.addresses_verified
            )
        except InvalidRequirement as exc:
            # The proxy's configuration is wrong: deny, and say what is wrong (nginx
            # shows a 500).
            self._deny(400, "invalid_requirement", str(exc))
            return
        auth_headers = self._auth_headers()
        try:
            requirements = requirements.narrowed(
                Requirements.parse(
                    auth_headers.requirements, addresses_verified=self.addresses_verified
                )
            )
        except InvalidRequirement as exc:
            self._forbid("invalid_requirement", str(exc))  # maybe the client's own header
            return
        forged = auth_headers.identity
        if forged is not None:
            # nginx hands the client's headers to this subrequest: an X-Auth-* name
            # that authsvc does not read is the client's own, and some upstream may
            # trust it (the proxy overwrites only the names it sets).
            self._forbid("identity_header", f"the client sent {forged[:60]}")
            return
        unmet = requirements.unmet(caller.user)
        if unmet is not None:
            self._forbid(f"unmet_{unmet}", f"requirement not met: {unmet}")
            return
        if self.from_cookie and self._cross_site_change():
            self._forbid("cross_site", "a cross-site request that changes something")
            return
        user = caller.user
        for name in USER_ID_HEADERS:
            self.set_header(name, user.id)
        # Bytes go out as they are: an address with a non-ASCII local part is sent as
        # UTF-8 (a str would have to be Latin-1).
        for name in EMAIL_HEADERS:
            self.set_header(name, user.email.encode())
        self.set_header(SESSION_HEADER, caller.session_id)
        self._allow_caching(caller.expires_at, auth_headers.requirement_names)
        self.outcome = "allowed"
        self.set_status(200)
        self.finish()

    def _token(self) -> str | None:
        """The access token: ``Authorization: Bearer``, else the cookie (if one is
        named); None when neither was sent. A malformed one is an invalid token ("")."""
        header = self.request.headers.get("Authorization")
        if header is not None and header.strip()[:7].lower() == "bearer ":
            try:
                token = bearer_token(header)
            except Unauthorized:
                return ""
        elif self.cookie is not None and (value := self.get_cookie(self.cookie)):
            token = value.strip()
            self.from_cookie = True
        else:
            return None
        return token if len(token) <= MAX_TOKEN_CHARS else ""

    def _query_requirements(self) -> Iterator[tuple[str, str]]:
        for name, raw_values in self.request.query_arguments.items():
            for raw in raw_values:
                yield name, raw.decode("utf-8", "replace")

    def _auth_headers(self) -> AuthHeaders:
        """The request's X-Auth-* headers, in one pass over its headers."""
        found = AuthHeaders()
        for header, value in self.request.headers.get_all():
            lowered = header.lower()
            if not lowered.startswith("x-auth-"):
                continue
            if lowered.startswith(REQUIREMENT_PREFIX):
                found.requirements.append(
                    (lowered[len(REQUIREMENT_PREFIX) :].replace("-", "_"), value)
                )
                found.requirement_names.add(header)
            elif found.identity is None:
                found.identity = header
        return found

    def _cross_site_change(self) -> bool:
        """Whether a browser sent this request from another site to change something.
        A change is an unsafe method, an unknown one, or none named (a proxy that does
        not say: refused rather than let a cross-site form through), or a WebSocket
        (a GET that opens a channel). A request that names neither its site nor an
        Origin is no browser's cross-site form (browsers send Origin on every POST); an
        Origin that cannot be read is another site's."""
        method = self.request.headers.get("X-Forwarded-Method", "").strip().upper()
        websocket = self.request.headers.get("Sec-Fetch-Mode", "").strip().lower() == "websocket"
        if method in SAFE_METHODS and not websocket:
            return False
        site = self.request.headers.get("Sec-Fetch-Site")
        if site is not None:
            return site.strip().lower() not in OWN_SITE
        origin = self.request.headers.get("Origin")
        if origin is None:
            return False
        try:
            return normalize_origin(origin.strip()) != self._own_origin()
        except ValueError:  # "http://[x", "null", a list: no origin of ours
            return True

    def _own_origin(self) -> str:
        """The origin of the guarded request: PUBLIC_URL's, or else the scheme and host
        (with its port) the proxy forwarded."""
        if self.public_origin is not None:
            return self.public_origin
        scheme = self.request.headers.get("X-Forwarded-Proto") or self.request.protocol
        host = self.request.headers.get("X-Forwarded-Host") or self.request.host
        try:
            return normalize_origin(f"{scheme.strip()}://{host.strip()}")
        except ValueError:
            return ""  # no origin matches it

    def _allow_caching(self, expires_at: int, requirement_names: set[str]) -> None:
        """FORWARD_AUTH_CACHE_S > 0: a proxy may keep this 200 that long, keyed on the
        credentials and the requirement headers (Vary), never past the token's own
        expiry, and not at all for a token from a cookie whose check depends on the
        request's method and site."""
        seconds = min(self.cache_s, int(expires_at - time.time()))
        if seconds <= 0 or self.from_cookie:
            return
        varied = ["Authorization", *sorted(requirement_names)]
        self.set_header("Cache-Control", f"max-age={seconds}, s-maxage={seconds}")
        self.set_header("Vary", ", ".join(varied))

    def _forbid(self, outcome: str, message: str) -> None:
        self.set_header("WWW-Authenticate", 'Bearer realm="authsvc", error="insufficient_scope"')
        self._deny(403, outcome, message)

    def _deny(self, status: int, outcome: str, message: str) -> None:
        self.outcome = outcome
        self.write_json(status, {"errors": [{"message": message}]})
