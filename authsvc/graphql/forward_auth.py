"""GET/HEAD /auth: forward-auth for nginx ``auth_request`` and Traefik ForwardAuth.

The proxy asks with the client's request headers; authsvc answers 200 with the caller's
identity in headers the proxy copies onto the upstream request, 401 (with the RFC 6750
challenge) when there is no valid token, 403 when a requirement is not met. A hot path
like ``me``: no GraphQL, one session-store round trip (the user row comes from the
sessions' short cache, see SessionService._recent_user).

Requirements come from the query string (``/auth?confirmed=true``) and from
``X-Auth-Require-<Name>`` headers. nginx passes the client's own headers on to the
subrequest too, so a client can send such a header itself: every requirement must hold
(they only ever add up), so a client can only make its own request stricter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from authsvc.core.access_rules import InvalidRequirement, Requirements
from authsvc.core.errors import Unauthorized
from authsvc.graphql.context import bearer_token
from authsvc.graphql.errors import UNAVAILABLE_RETRY_S, note_store_unavailable
from authsvc.graphql.http import JSONHandler
from authsvc.services import Services
from authsvc.stores.base import StoreUnavailable

REQUIREMENT_HEADER = "X-Auth-Require-"
#: A longer value is no token of ours: refused before any work (an access token is
#: a few hundred characters).
MAX_TOKEN_CHARS = 4096
#: The identity headers, ours and the names oauth2-proxy uses (--set-xauthrequest), so
#: that upstreams configured for it work unchanged.
USER_ID_HEADERS = ("X-Auth-User-Id", "X-Auth-Request-User")
EMAIL_HEADERS = ("X-Auth-Email", "X-Auth-Request-Email")
SESSION_HEADER = "X-Auth-Session-Id"


class ForwardAuthHandler(JSONHandler):
    operation = "forward_auth"

    def initialize(self, services: Services, cookie: str | None, cache_s: int) -> None:
        self.services = services
        self.cookie = cookie
        self.cache_s = cache_s

    async def head(self) -> None:
        await self.get()

    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")  # every answer but a cacheable 200
        try:
            requirements = Requirements.parse(self._requirement_pairs())
        except InvalidRequirement as exc:
            # The proxy's configuration is wrong: deny (nginx makes any other status a
            # 500), and say what is wrong.
            self._deny(400, "invalid_requirement", str(exc))
            return
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
        unmet = requirements.unmet(caller.user)
        if unmet is not None:
            self.set_header(
                "WWW-Authenticate", 'Bearer realm="authsvc", error="insufficient_scope"'
            )
            self._deny(403, f"unmet_{unmet}", f"requirement not met: {unmet}")
            return
        user = caller.user
        for name in USER_ID_HEADERS:
            self.set_header(name, user.id)
        # Bytes go out as they are: an address with a non-ASCII local part is sent as
        # UTF-8 (a str would have to be Latin-1).
        for name in EMAIL_HEADERS:
            self.set_header(name, user.email.encode())
        self.set_header(SESSION_HEADER, caller.session_id)
        self._allow_caching(caller.expires_at)
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
        else:
            return None
        return token if len(token) <= MAX_TOKEN_CHARS else ""

    def _requirement_pairs(self) -> Iterator[tuple[str, str]]:
        for name, raw_values in self.request.query_arguments.items():
            for raw in raw_values:
                yield name, raw.decode("utf-8", "replace")
        for header, value in self.request.headers.get_all():
            if header.lower().startswith(REQUIREMENT_HEADER.lower()):
                yield header[len(REQUIREMENT_HEADER) :].lower().replace("-", "_"), value

    def _allow_caching(self, expires_at: int) -> None:
        """FORWARD_AUTH_CACHE_S > 0: a proxy may keep this 200 that long, keyed on the
        credentials (Vary), and never past the token's own expiry."""
        seconds = min(self.cache_s, int(expires_at - time.time()))
        if seconds <= 0:
            return
        self.set_header("Cache-Control", f"max-age={seconds}, s-maxage={seconds}")
        self.set_header("Vary", "Authorization, Cookie" if self.cookie else "Authorization")

    def _deny(self, status: int, outcome: str, message: str) -> None:
        self.outcome = outcome
        self.write_json(status, {"errors": [{"message": message}]})
