"""Signing keys: one key ring per token type, one key signs, every key verifies.

HMAC rings hold one shared secret and no ``kid`` (the Node service's tokens had none).
Asymmetric rings (EdDSA, ES256, RS256) hold private keys, each named by its RFC 7638
thumbprint as ``kid``; a retired key keeps verifying the tokens it signed until it is
removed, and only public members are ever published (JWKS).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jwt.algorithms import get_default_algorithms

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


class KeyRing:
    """The keys of one token type: ``signing`` signs; every key verifies."""

    def __init__(self, algorithm: str, keys: list[Key], signing_kid: str | None = None) -> None:
        if not keys:
            raise KeyConfigError(f"no {algorithm} key")
        self.algorithm = algorithm
        self._by_kid = {key.kid: key for key in keys}
        if signing_kid is not None and signing_kid not in self._by_kid:
            raise KeyConfigError(f"JWT_SIGNING_KID {signing_kid!r} names no loaded key")
        self.signing = self._by_kid[signing_kid] if signing_kid else keys[-1]

    @property
    def keys(self) -> list[Key]:
        return list(self._by_kid.values())

    def verification_key(self, kid: Any) -> Any:
        """The key that verifies a token with header ``kid``. Raises Unauthorized for
        a kid that is unknown, of the wrong type, or present on an HMAC token."""
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized()
        key = self._by_kid.get(kid)
        if key is None:
            raise Unauthorized()
        return key.public

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys as a JWK Set; empty for HMAC, whose key is a shared secret."""
        return {"keys": [key.jwk for key in self._by_kid.values() if key.jwk is not None]}
