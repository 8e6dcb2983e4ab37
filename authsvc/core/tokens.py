"""Signing and verifying access and refresh tokens (PyJWT).

Both token types carry ``sub`` (user id), ``sid`` (session), ``jti``, ``iat``, ``exp``,
``iss``, ``aud`` and ``typ``. Each type has its own key ring and ``typ`` is checked too,
so an access token is useless as a refresh token and the reverse. Defences of RFC 8725
§3: the algorithm is pinned per ring (never read from the token), the key is chosen by
``kid`` among our own keys only (``jku``, ``x5u`` and ``jwk`` headers are never used).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import timedelta

import jwt
import orjson
from jwt.algorithms import Algorithm, get_default_algorithms
from jwt.utils import base64url_encode

from authsvc.core.clock import Clock
from authsvc.core.errors import Unauthorized
from authsvc.core.keys import KeyRing

#: Verified tokens whose claims are kept per process (about 0.5 KB each).
VERIFIED_CACHE_SIZE = 4096

#: Every claim a token must carry; a token missing one is refused (RFC 7519 §4.1).
REQUIRED_CLAIMS = ("sub", "sid", "jti", "iat", "exp", "iss", "aud", "typ")


@dataclass(frozen=True, slots=True)
class TokenType:
    """A kind of token: its ``typ`` claim, its keys and its lifetime."""

    typ: str
    ring: KeyRing
    lifetime_s: int


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    sid: str
    jti: str
    iat: int
    exp: int
    typ: str


class Signer:
    """Signs with a ring's signing key: the same JWS compact form ``jwt.encode`` makes,
    with the header segment and the key prepared once instead of per token. Preparing
    an HMAC key (PyJWT checks it is not a PEM or SSH key) cost more than signing."""

    def __init__(self, ring: KeyRing) -> None:
        key = ring.signing
        header = {"alg": ring.algorithm, "typ": "JWT"} | ({"kid": key.kid} if key.kid else {})
        self._header = base64url_encode(orjson.dumps(header, option=orjson.OPT_SORT_KEYS))
        self._algorithm: Algorithm = get_default_algorithms()[ring.algorithm]
        self._key = self._algorithm.prepare_key(key.private)

    def sign(self, payload: dict[str, object]) -> str:
        signing_input = self._header + b"." + base64url_encode(orjson.dumps(payload))
        signature = self._algorithm.sign(signing_input, self._key)
        return (signing_input + b"." + base64url_encode(signature)).decode("ascii")


class TokenCodec:
    def __init__(
        self,
        *,
        access: TokenType,
        refresh: TokenType,
        issuer: str,
        audience: str,
        leeway_s: int,
        clock: Clock,
    ) -> None:
        self.access = access
        self.refresh = refresh
        self.issuer = issuer
        self.audience = audience
        self._leeway = timedelta(seconds=leeway_s)
        self._clock = clock
        self._verified: OrderedDict[tuple[str, str], Claims] = OrderedDict()
        self._signers = {kind.typ: Signer(kind.ring) for kind in (access, refresh)}

    def use_access_ring(self, ring: KeyRing) -> None:
        """Sign and verify access tokens with ``ring`` from now on (the keys folder
        changed). Claims verified with the old keys are forgotten: a removed key's
        tokens are refused at once."""
        self.access = replace(self.access, ring=ring)
        self._signers[self.access.typ] = Signer(ring)
        self._verified.clear()

    def issue(self, kind: TokenType, user_id: str, session_id: str, jti: str | None = None) -> str:
        """A signed token of ``kind``; ``exp = iat + lifetime``."""
        iat = int(self._clock().timestamp())
        payload = {
            "sub": user_id,
            "sid": session_id,
            "jti": jti or secrets.token_hex(16),
            "iat": iat,
            "exp": iat + kind.lifetime_s,
            "iss": self.issuer,
            "aud": self.audience,
            "typ": kind.typ,
        }
        return self._signers[kind.typ].sign(payload)

    def verify(self, kind: TokenType, token: str, *, keep: bool = True) -> Claims:
        """The claims of a valid token of ``kind``. Raises Unauthorized otherwise: bad
        signature, other algorithm, unknown kid, expired, not yet valid, wrong issuer,
        audience or type, a required claim missing.

        A token is immutable, so a verified token's claims are kept (a bounded LRU per
        process) and only its expiry is checked again: clients send the same access
        token many times. A new key ring empties it (use_access_ring); a retired key
        outlives every token it signed, so its expiry needs no check here. ``keep=False``
        for a token about to be spent (renew, logout): it would only crowd out others.
        """
        cache_key = (kind.typ, token)
        cached = self._verified.get(cache_key)
        if cached is not None:
            if cached.exp + self._leeway.total_seconds() < time.time():
                del self._verified[cache_key]
                raise Unauthorized()
            self._verified.move_to_end(cache_key)
            return cached
        claims = self._verify(kind, token)
        if not keep:
            return claims
        self._verified[cache_key] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _verify(self, kind: TokenType, token: str) -> Claims:
        try:
            header = jwt.get_unverified_header(token)
            key = kind.ring.verification_key(header.get("kid"))
            payload = jwt.decode(
                token,
                key,
                algorithms=[kind.ring.algorithm],  # pinned: never trust the header's alg
                audience=self.audience,
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError:
            raise Unauthorized() from None
        if payload["typ"] != kind.typ:
            raise Unauthorized()
        try:
            return Claims(
                sub=str(payload["sub"]),
                sid=str(payload["sid"]),
                jti=str(payload["jti"]),
                iat=int(payload["iat"]),
                exp=int(payload["exp"]),
                typ=str(payload["typ"]),
            )
        except (TypeError, ValueError):
            raise Unauthorized() from None
