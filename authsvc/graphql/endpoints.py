"""Endpoints beside GraphQL: the JWKS, introspection (RFC 7662), health and readiness
(discovery.py: the discovery documents)."""

from __future__ import annotations

import base64
import hmac

from authsvc.graphql.http import JSONHandler
from authsvc.services import Services


class JWKSHandler(JSONHandler):
    """GET /.well-known/jwks.json: the public keys that verify access tokens, as the
    ring holds them now (a retired key drops out when it expires). Verifiers cache the
    set for JWKS_MAX_AGE_S; Tornado tags it with an ETag of its body and answers an
    If-None-Match that matches with 304."""

    def initialize(self, services: Services, max_age_s: int) -> None:
        self.services = services
        self.max_age_s = max_age_s

    def get(self) -> None:
        self.outcome = "ok"
        self.set_header("Cache-Control", f"public, max-age={self.max_age_s}")
        self.write_json(200, self.services.tokens.access.ring.jwks())


class IntrospectionHandler(JSONHandler):
    """POST /introspect (RFC 7662): is this token active now? For services that want the
    online check. Callers authenticate with HTTP Basic (client id and secret)."""

    def initialize(self, services: Services, client_id: str, client_secret: str) -> None:
        self.services = services
        self.expected = f"{client_id}:{client_secret}".encode()

    async def post(self) -> None:
        if not self._client_authenticated():
            self.outcome = "http_401"
            self.set_header("WWW-Authenticate", 'Basic realm="authsvc introspection"')
            self.write_json(401, {"error": "invalid_client"})
            return
        token = self.get_body_argument("token", "").strip()
        if not token:
            self.outcome = "http_400"
            self.write_json(
                400, {"error": "invalid_request", "error_description": "token is required"}
            )
            return
        claims = await self.services.sessions.introspect(token)
        self.outcome = "active" if claims else "inactive"
        self.set_header("Cache-Control", "no-store")
        if claims is None:
            self.write_json(200, {"active": False})
            return
        self.write_json(
            200,
            {
                "active": True,
                "token_type": f"{claims.typ}_token",
                "sub": claims.sub,
                "sid": claims.sid,
                "jti": claims.jti,
                "iat": claims.iat,
                "exp": claims.exp,
                "iss": self.services.tokens.issuer,
                "aud": self.services.tokens.audience,
            },
        )

    def _client_authenticated(self) -> bool:
        scheme, _, encoded = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, self.expected)


class HealthHandler(JSONHandler):
    """GET /healthz: the process answers (liveness). Touches no dependency."""

    def get(self) -> None:
        self.outcome = "ok"
        self.set_header("Cache-Control", "no-store")
        self.write_json(200, {"status": "ok"})


class ReadinessHandler(JSONHandler):
    """GET /readyz: every dependency answers within STORE_TIMEOUT_S; 503 naming the
    failing part otherwise, so a load balancer stops sending traffic here."""

    def initialize(self, services: Services) -> None:
        self.services = services

    async def get(self) -> None:
        checks = await self.services.readiness()
        ready = all(state == "ok" for state in checks.values())
        self.outcome = "ready" if ready else "not_ready"
        self.set_header("Cache-Control", "no-store")
        self.write_json(200 if ready else 503, {"status": self.outcome, "checks": checks})
