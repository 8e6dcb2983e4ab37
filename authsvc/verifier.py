"""Verify authsvc access tokens inside another service, with no call to authsvc.

Light by design: it imports PyJWT and the standard library only, so a service needs
neither Tornado nor Redis nor MySQL to use it (``authenticated`` works on Tornado
handlers without importing Tornado).

    verifier = AccessTokenVerifier(jwks_url="https://auth.example.com/.well-known/jwks.json")
    claims = verifier.verify(token)            # or verify_authorization(header)
    claims["sub"]                              # the user id

With EdDSA/ES256/RS256, keys come from authsvc's JWKS URL: the set is cached, and a token
with an unknown ``kid`` (a rotated key) makes it refetch, at most once per
``refetch_interval_s``. With HS256, pass the shared ``secret`` (JWT_ACCESS_SECRET).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jwt

ASYMMETRIC = ("EdDSA", "ES256", "RS256")
REQUIRED_CLAIMS = ("sub", "sid", "jti", "iat", "exp", "iss", "aud", "typ")


#: RFC 6750 §3: the challenge for an expired token, which a client answers by refreshing.
EXPIRED_CHALLENGE = 'Bearer error="invalid_token", error_description="expired"'


class TokenInvalid(Exception):
    """The token cannot be trusted: bad signature, unknown key, wrong claims or type."""


class TokenExpired(TokenInvalid):
    """The token was valid and has expired: the client should call `refresh` (or
    `renew`) with its refresh token and retry with the new access token."""


class KeysUnavailable(Exception):
    """The JWKS URL could not be fetched, so the token could not be checked."""


class AccessTokenVerifier:
    def __init__(
        self,
        *,
        jwks_url: str | None = None,
        secret: str | None = None,
        issuer: str = "authsvc",
        audience: str = "authsvc",
        algorithms: Sequence[str] | None = None,
        leeway_s: float = 0,
        jwks_cache_s: float = 300,
        refetch_interval_s: float = 30,
        timeout_s: float = 5,
    ) -> None:
        if (jwks_url is None) == (secret is None):
            raise ValueError("give exactly one of jwks_url (EdDSA/ES256/RS256) or secret (HS*)")
        self._secret = secret
        self._algorithms = list(algorithms or (ASYMMETRIC if jwks_url else ("HS256",)))
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._jwks = (
            jwt.PyJWKClient(
                jwks_url,
                cache_jwk_set=True,
                lifespan=jwks_cache_s,
                cooldown_duration=refetch_interval_s,
                timeout=timeout_s,
            )
            if jwks_url
            else None
        )

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token. Raises TokenExpired, TokenInvalid, or
        KeysUnavailable when the JWKS URL does not answer."""
        key: Any = self._secret
        algorithms = self._algorithms
        if self._jwks is not None:
            try:
                signing_key = self._jwks.get_signing_key_from_jwt(token)
            except jwt.PyJWKClientConnectionError as exc:
                raise KeysUnavailable(str(exc)) from exc
            except jwt.PyJWTError as exc:  # unknown kid, malformed token or set
                raise TokenInvalid(str(exc)) from exc
            key = signing_key.key
            # Pinned twice: the key's own algorithm, and only if it is allowed here.
            algorithms = [a for a in algorithms if a == signing_key.algorithm_name]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpired("access token expired") from exc
        except jwt.PyJWTError as exc:
            raise TokenInvalid(str(exc)) from exc
        if claims.get("typ") != "access":
            raise TokenInvalid("not an access token")
        return claims

    def verify_authorization(self, header: str | None) -> dict[str, Any]:
        """Verify the token of an ``Authorization: Bearer <token>`` header."""
        scheme, _, token = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenInvalid("no bearer token")
        return self.verify(token.strip())


def authenticated(verifier: AccessTokenVerifier) -> Callable[[Any], Any]:
    """Decorate a Tornado handler method: a valid access token puts its claims in
    ``self.token_claims``; otherwise the answer is 401 with a ``WWW-Authenticate``
    header (``error_description="expired"`` tells the client to refresh and retry), or
    503 when the keys cannot be fetched."""

    def decorate(method: Any) -> Any:
        @functools.wraps(method)
        async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                self.token_claims = verifier.verify_authorization(
                    self.request.headers.get("Authorization")
                )
            except TokenExpired:
                return _refuse(
                    self, 401, 'Bearer error="invalid_token", error_description="expired"'
                )
            except TokenInvalid:
                return _refuse(self, 401, 'Bearer error="invalid_token"')
            except KeysUnavailable:
                return _refuse(self, 503, None)
            result = method(self, *args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        return wrapper

    return decorate


def _refuse(handler: Any, status: int, challenge: str | None) -> None:
    handler.set_status(status)
    if challenge:
        handler.set_header("WWW-Authenticate", challenge)
    handler.finish({"error": "unauthorized" if status == 401 else "keys unavailable"})
