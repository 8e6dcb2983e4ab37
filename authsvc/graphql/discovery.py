"""The discovery document (RFC 8414 and OpenID Connect Discovery 1.0): what a verifier
reads to find authsvc's keys, and nothing that promises a flow authsvc does not have.

authsvc is no OAuth authorization server: it has no authorization or token endpoint and
issues no ID tokens. The document therefore says what is true of it:

- ``issuer`` is exactly the ``iss`` of its tokens (JWT_ISSUER), so a verifier that
  compares the two agrees; ``jwks_uri`` the JWKS, empty with HMAC access tokens.
- Members that RFC 8414 or OIDC Discovery require, or that default to a flow when
  absent, are present and empty: ``response_types_supported`` (REQUIRED; an absent
  ``grant_types_supported`` would mean authorization_code and implicit, an absent
  ``token_endpoint_auth_methods_supported`` client_secret_basic at a token endpoint).
- ``id_token_signing_alg_values_supported`` (REQUIRED in OIDC) lists the algorithm of
  the tokens that a verifier can check with ``jwks_uri``: the access tokens' with
  EdDSA, ES256 or RS256, none with HMAC (the key is a shared secret). Verifier
  libraries (go-oidc, for one) take their accepted algorithms from it.
- ``introspection_endpoint`` only when it is routed (INTROSPECTION_CLIENT_SECRET).
"""

from __future__ import annotations

from typing import Any

from authsvc.graphql.http import JSONHandler
from authsvc.settings import Settings

PATHS = (r"/\.well-known/openid-configuration", r"/\.well-known/oauth-authorization-server")
JWKS_PATH = "/.well-known/jwks.json"


def discovery_document(settings: Settings) -> dict[str, Any]:
    base = settings.base_url
    document: dict[str, Any] = {
        "issuer": settings.jwt_issuer,
        "jwks_uri": base + JWKS_PATH,
        "response_types_supported": [],
        "response_modes_supported": [],
        "grant_types_supported": [],
        "token_endpoint_auth_methods_supported": [],
        "subject_types_supported": ["public"],  # `sub` is the user id, to every service
        "id_token_signing_alg_values_supported": (
            [] if settings.uses_hmac_access_tokens else [settings.jwt_algorithm]
        ),
    }
    if settings.introspection_client_secret is not None:
        document["introspection_endpoint"] = base + "/introspect"
        document["introspection_endpoint_auth_methods_supported"] = ["client_secret_basic"]
    return document


class DiscoveryHandler(JSONHandler):
    """GET /.well-known/openid-configuration and /.well-known/oauth-authorization-server:
    one document, built at start (it depends on the settings only)."""

    def initialize(self, document: dict[str, Any], max_age_s: int) -> None:
        self.document = document
        self.max_age_s = max_age_s

    def get(self) -> None:
        self.outcome = "ok"
        self.set_header("Cache-Control", f"public, max-age={self.max_age_s}")
        self.write_json(200, self.document)  # Tornado adds the ETag and answers 304
