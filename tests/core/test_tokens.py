"""Token rules and the attacks of RFC 8725, for HS256 and each asymmetric algorithm."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import jwt.warnings
import pytest
from cryptography.hazmat.primitives import serialization

from authsvc.core.errors import Unauthorized
from authsvc.core.keys import KeyRing, asymmetric_key, generate_private_key, hmac_key
from authsvc.core.tokens import TokenCodec, TokenType

ALGORITHMS = ["HS256", "EdDSA", "ES256", "RS256"]
REFRESH = TokenType("refresh", KeyRing("HS256", [hmac_key("r" * 32)]), 3600)


def ring_for(algorithm: str) -> KeyRing:
    if algorithm.startswith("HS"):
        return KeyRing(algorithm, [hmac_key("a" * 32)])
    return KeyRing(algorithm, [asymmetric_key(algorithm, generate_private_key(algorithm))])


def codec(access: TokenType, now: datetime | None = None, leeway_s: int = 0) -> TokenCodec:
    moment = now or datetime.now(UTC)
    return TokenCodec(
        access=access,
        refresh=REFRESH,
        issuer="authsvc",
        audience="services",
        leeway_s=leeway_s,
        clock=lambda: moment,
    )


@pytest.fixture(params=ALGORITHMS)
def access(request) -> TokenType:
    return TokenType("access", ring_for(request.param), 900)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    base = {
        "sub": "u", "sid": "s", "jti": "j", "iat": now, "exp": now + 60,
        "iss": "authsvc", "aud": "services", "typ": "access",
    }  # fmt: skip
    return {k: v for k, v in (base | changes).items() if v is not None}


def sign(access: TokenType, payload: dict[str, Any], **headers: Any) -> str:
    """A token signed with the ring's real signing key, with any payload and headers."""
    key = access.ring.signing
    all_headers = ({"kid": key.kid} if key.kid else {}) | headers
    return jwt.encode(payload, key.private, algorithm=access.ring.algorithm, headers=all_headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], hmac_key_bytes: bytes) -> str:
    """A token HMAC-signed by hand: PyJWT rightly refuses to use a public key as an HMAC
    secret, which is exactly the forgery to test."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    mac = hmac.new(hmac_key_bytes, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(mac)


def refused(access: TokenType, token: str) -> bool:
    try:
        codec(access).verify(access, token)
    except Unauthorized:
        return True
    return False


def test_issued_token_verifies_with_its_claims(access):
    tokens = codec(access)
    token = tokens.issue(access, "user-1", "sid-1")
    verified = tokens.verify(access, token)
    assert (verified.sub, verified.sid, verified.typ) == ("user-1", "sid-1", "access")
    assert verified.exp - verified.iat == 900
    header = jwt.get_unverified_header(token)
    assert header["alg"] == access.ring.algorithm
    assert header.get("kid") == access.ring.signing.kid  # None for HMAC, as in Node


def test_issued_token_is_what_pyjwt_makes_and_verifies(access):
    """Signer prepares the key once; the token must stay PyJWT's JWS, to the byte where
    the algorithm is deterministic (HMAC, EdDSA)."""
    token = codec(access).issue(access, "user-1", "sid-1", jti="j-1")
    key = access.ring.signing
    payload = jwt.decode(token, key.public, algorithms=[access.ring.algorithm], audience="services")
    assert (payload["sub"], payload["sid"], payload["jti"]) == ("user-1", "sid-1", "j-1")
    assert jwt.get_unverified_header(token)["typ"] == "JWT"
    if access.ring.algorithm in ("HS256", "EdDSA"):
        assert token == sign(access, payload)


def test_alg_none_is_refused(access):
    token = jwt.encode(claims(), None, algorithm="none")  # type: ignore[arg-type]
    assert refused(access, token)


def test_algorithm_not_on_the_list_is_refused(access):
    other = "HS512" if access.ring.algorithm != "HS512" else "HS256"
    kid = access.ring.signing.kid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        token = jwt.encode(claims(), "a" * 32, algorithm=other, headers={"kid": kid} if kid else {})
    assert refused(access, token)


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_hs256_signed_with_the_public_key_is_refused(algorithm):
    access = TokenType("access", ring_for(algorithm), 900)
    public_pem = access.ring.signing.public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": access.ring.signing.kid}
    assert refused(access, hand_made(header, claims(), public_pem))


def test_tampered_payload_or_signature_is_refused(access):
    token = sign(access, claims())
    header, payload, signature = token.split(".")
    forged_payload = b64(json.dumps(claims(sub="admin")).encode())
    assert refused(access, f"{header}.{forged_payload}.{signature}")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert refused(access, f"{header}.{payload}.{flipped}")
    assert refused(access, f"{header}.{payload}.")


@pytest.mark.parametrize(
    "kid", ["unknown-kid", "../../../../etc/passwd", "' OR '1'='1", "k\x00id", 42, ["a"], ""]
)
def test_unknown_or_hostile_kid_is_refused(kid):
    access = TokenType("access", ring_for("EdDSA"), 900)
    if isinstance(kid, str):
        token = sign(access, claims(), kid=kid)
    else:  # PyJWT will not write a kid that is not a string; a client can
        genuine = sign(access, claims())
        header = b64(json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": kid}).encode())
        token = header + genuine[genuine.index(".") :]
    assert refused(access, token)


def test_jku_x5u_and_jwk_headers_are_ignored():
    access = TokenType("access", ring_for("ES256"), 900)
    attacker = asymmetric_key("ES256", generate_private_key("ES256"))
    headers = {
        "jku": "http://127.0.0.1:9/jwks.json",
        "x5u": "http://127.0.0.1:9/cert.pem",
        "jwk": attacker.jwk,
    }
    # Signed by the attacker, pointing at the attacker's key by every header there is.
    for kid in (attacker.kid, access.ring.signing.kid):
        token = jwt.encode(
            claims(), attacker.private, algorithm="ES256", headers=headers | {"kid": kid}
        )
        assert refused(access, token)
    # The headers do not stop a token our own key signed: they are simply not used.
    assert not refused(access, sign(access, claims(), **headers))


def test_expired_and_not_yet_valid_are_refused_leeway_honoured(access):
    past = datetime.now(UTC) - timedelta(seconds=910)  # expired 10 s ago
    token = codec(access, past).issue(access, "u", "s")
    with pytest.raises(Unauthorized):
        codec(access).verify(access, token)
    assert codec(access, leeway_s=30).verify(access, token).sub == "u"
    future = int(datetime.now(UTC).timestamp()) + 600
    assert refused(access, sign(access, claims(nbf=future)))


@pytest.mark.parametrize("claim", ["exp", "sub", "jti", "sid", "iat", "iss", "aud", "typ"])
def test_missing_claims_are_refused(access, claim):
    assert refused(access, sign(access, claims(**{claim: None})))


@pytest.mark.parametrize("change", [{"iss": "other"}, {"aud": "other"}, {"typ": "refresh"}])
def test_wrong_issuer_audience_or_type_is_refused(access, change):
    assert not refused(access, sign(access, claims()))
    assert refused(access, sign(access, claims(**change)))


def test_each_type_is_refused_in_the_others_place(access):
    tokens = codec(access)
    with pytest.raises(Unauthorized):
        tokens.verify(REFRESH, tokens.issue(access, "u", "s"))
    with pytest.raises(Unauthorized):
        tokens.verify(access, tokens.issue(REFRESH, "u", "s"))
    # Even with one shared key the typ claim keeps them apart.
    same_key = TokenType("refresh", KeyRing("HS256", [hmac_key("a" * 32)]), 3600)
    shared = TokenType("access", KeyRing("HS256", [hmac_key("a" * 32)]), 900)
    with pytest.raises(Unauthorized):
        codec(shared).verify(same_key, codec(shared).issue(shared, "u", "s"))


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_key_rotation_old_kid_verifies_removed_kid_is_refused(algorithm):
    old = asymmetric_key(algorithm, generate_private_key(algorithm))
    new = asymmetric_key(algorithm, generate_private_key(algorithm))
    before = TokenType("access", KeyRing(algorithm, [old]), 900)
    token_of_old = codec(before).issue(before, "u", "s")
    rotated = TokenType("access", KeyRing(algorithm, [old, new]), 900)
    assert rotated.ring.signing is new
    assert jwt.get_unverified_header(codec(rotated).issue(rotated, "u", "s"))["kid"] == new.kid
    assert codec(rotated).verify(rotated, token_of_old).sub == "u"
    removed = TokenType("access", KeyRing(algorithm, [new]), 900)
    assert refused(removed, token_of_old)


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256", "RS256"])
def test_jwks_has_public_members_only(algorithm):
    ring = KeyRing(algorithm, [asymmetric_key(algorithm, generate_private_key(algorithm))])
    [jwk] = ring.jwks()["keys"]
    assert jwk["kid"] == ring.signing.kid and jwk["alg"] == algorithm and jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi", "oth", "k"} & set(jwk)
    public = jwt.PyJWK(jwk).key
    assert public.public_numbers() if algorithm != "EdDSA" else public.public_bytes_raw()


def test_hmac_publishes_nothing():
    assert KeyRing("HS256", [hmac_key("a" * 32)]).jwks() == {"keys": []}


def test_tokens_about_to_be_spent_are_not_kept():
    tokens = codec(REFRESH)
    kept = tokens.issue(REFRESH, "u", "s1")
    spent = tokens.issue(REFRESH, "u", "s2")
    assert tokens.verify(REFRESH, kept).sid == "s1"
    assert tokens.verify(REFRESH, spent, keep=False).sid == "s2"
    assert list(tokens._verified) == [("refresh", kept)]  # the LRU of verified claims
