"""Signing keys: one key ring per token type, one key signs, every live key verifies.

HMAC rings hold one shared secret and no ``kid`` (the Node service's tokens had none).
Asymmetric rings (EdDSA, ES256, RS256) hold private keys, each named by its RFC 7638
thumbprint as ``kid``; only public members are ever published (JWKS).

A key's life: *next* (generated, published so that verifiers fetch it before it signs),
*signing*, *retired* (it stopped signing at a recorded time: still published and
accepted for ``retention_s``, which covers the longest-lived token it signed), then
*expired* (neither published nor accepted, with nobody removing it). A key older than
the signing key with no retirement record (from before records existed) stays retired
until it is removed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from jwt.algorithms import get_default_algorithms

from authsvc.core.clock import Clock, utc_now
from authsvc.core.errors import Unauthorized

if TYPE_CHECKING:  # cryptography is loaded only where an asymmetric key is used
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
ASYMMETRIC_ALGORITHMS = ("EdDSA", "ES256", "RS256")

#: The members RFC 7638 §3.2 hashes for each key type, in its required (sorted) order.
_THUMBPRINT_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}


class KeyConfigError(ValueError):
    """A key that does not fit the configured algorithm."""


def generate_private_key(algorithm: str) -> PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise KeyConfigError(f"no key to generate for {algorithm}")


def check_key_fits(algorithm: str, key: PrivateKey) -> None:
    """Raises KeyConfigError unless ``key`` can sign with ``algorithm``."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    fits = {
        "EdDSA": isinstance(key, ed25519.Ed25519PrivateKey),
        "ES256": isinstance(key, ec.EllipticCurvePrivateKey)
        and isinstance(key.curve, ec.SECP256R1),
        "RS256": isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048,
    }
    if not fits.get(algorithm, False):
        raise KeyConfigError(f"a {type(key).__name__} cannot sign {algorithm}")


def public_jwk(algorithm: str, key: PrivateKey) -> dict[str, Any]:
    """The public JWK of ``key``: no private member, by construction (from the public
    key only)."""
    jwk: dict[str, Any] = get_default_algorithms()[algorithm].to_jwk(key.public_key(), as_dict=True)
    return jwk


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): a kid derived from the key."""
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(canonical).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Key:
    kid: str | None
    private: Any  # the HMAC secret (str) or a private key object
    public: Any  # what verifies: the same secret, or the public key object
    jwk: dict[str, Any] | None = None  # public JWK, asymmetric keys only


def hmac_key(secret: str) -> Key:
    return Key(kid=None, private=secret, public=secret)


def asymmetric_key(algorithm: str, private: PrivateKey) -> Key:
    check_key_fits(algorithm, private)
    jwk = public_jwk(algorithm, private)
    kid = thumbprint(jwk)
    return Key(
        kid=kid,
        private=private,
        public=private.public_key(),
        jwk=jwk | {"kid": kid, "alg": algorithm, "use": "sig"},
    )


@dataclass(frozen=True, slots=True)
class KeyState:
    """Where a key is in its life; ``until``: when a retired key expires (None: when it
    is removed), or when an expired one did."""

    name: Literal["next", "signing", "retired", "expired"]
    until: datetime | None = None


class KeyRing:
    """The keys of one token type: ``signing`` signs; every key that has not expired
    verifies and is published.

    ``retired`` maps a kid to when that key stopped signing; it stays live for
    ``retention_s`` after that. ``clock`` tells expiry, so tests move time instead of
    sleeping. Keys are oldest first: the order tells a former signing key with no record
    (older than the signing key) from a next one (newer).
    """

    def __init__(
        self,
        algorithm: str,
        keys: list[Key],
        signing_kid: str | None = None,
        *,
        retired: Mapping[str, datetime] | None = None,
        retention_s: float = 0.0,
        clock: Clock = utc_now,
        records_lost: bool = False,
    ) -> None:
        """``records_lost``: the retirement records could not be read, so a former
        signing key may be long expired: such keys (older than the signing key) are
        refused, the safe side (their tokens' holders renew)."""
        if not keys:
            raise KeyConfigError(f"no {algorithm} key")
        self.algorithm = algorithm
        self._by_kid = {key.kid: key for key in keys}
        if signing_kid is not None and signing_kid not in self._by_kid:
            raise KeyConfigError(f"JWT_SIGNING_KID {signing_kid!r} names no loaded key")
        self.signing = self._by_kid[signing_kid] if signing_kid else keys[-1]
        self._clock = clock
        signing_at = keys.index(self.signing)
        retention = timedelta(seconds=retention_s)
        self._states: dict[str | None, KeyState] = {}
        #: kid -> POSIX time past which the key is refused: only keys that expire.
        self._ends: dict[str | None, float] = {}
        for position, key in enumerate(keys):
            stopped = (retired or {}).get(key.kid) if key.kid is not None else None
            if key is self.signing:
                state = KeyState("signing")  # signing wins over a stale record
            elif stopped is not None:
                state = KeyState("retired", stopped + retention)
                self._ends[key.kid] = state.until.timestamp()  # type: ignore[union-attr]
            elif position < signing_at and records_lost:
                state = KeyState("expired")
                self._ends[key.kid] = float("-inf")
            elif position < signing_at:
                state = KeyState("retired")  # no record: until it is removed
            else:
                state = KeyState("next")
            self._states[key.kid] = state

    @property
    def keys(self) -> list[Key]:
        return list(self._by_kid.values())

    def state(self, key: Key) -> KeyState:
        state = self._states[key.kid]
        if state.name == "retired" and not self._live(key.kid):
            return KeyState("expired", state.until)
        return state

    def verification_key(self, kid: Any) -> Any:
        """The key that verifies a token with header ``kid``. Raises Unauthorized for
        a kid that is unknown, expired, of the wrong type, or present on an HMAC token."""
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized()
        key = self._by_kid.get(kid)
        if key is None or not self._live(kid):
            raise Unauthorized()
        return key.public

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys that have not expired, as a JWK Set; empty for HMAC, whose
        key is a shared secret."""
        return {
            "keys": [
                key.jwk
                for key in self._by_kid.values()
                if key.jwk is not None and self._live(key.kid)
            ]
        }

    def _live(self, kid: str | None) -> bool:
        end = self._ends.get(kid)
        return end is None or self._clock().timestamp() <= end
