"""Token rules: claims, types, pinned algorithm, expiry and leeway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from authsvc.core.errors import Unauthorized
from authsvc.core.tokens import TokenCodec, TokenType

ACCESS = TokenType("access", "a" * 32, 900)
REFRESH = TokenType("refresh", "r" * 32, 3600)


def codec(now: datetime | None = None, leeway_s: int = 0) -> TokenCodec:
    moment = now or datetime.now(UTC)
    return TokenCodec(
        access=ACCESS,
        refresh=REFRESH,
        algorithm="HS256",
        issuer="authsvc",
        audience="services",
        leeway_s=leeway_s,
        clock=lambda: moment,
    )


def test_claims_of_an_issued_token():
    tokens = codec()
    claims = tokens.verify(ACCESS, tokens.issue(ACCESS, "user-1", "sid-1"))
    assert (claims.sub, claims.sid, claims.typ) == ("user-1", "sid-1", "access")
    assert claims.exp - claims.iat == 900
    raw = jwt.decode(tokens.issue(REFRESH, "u", "s", "jti-1"), options={"verify_signature": False})
    assert raw["jti"] == "jti-1" and raw["iss"] == "authsvc" and raw["aud"] == "services"


def test_each_type_is_refused_in_the_others_place_even_with_one_key():
    same_key = TokenType("refresh", ACCESS.secret, 3600)
    tokens = TokenCodec(
        access=ACCESS,
        refresh=same_key,
        algorithm="HS256",
        issuer="authsvc",
        audience="services",
        leeway_s=0,
        clock=lambda: datetime.now(UTC),
    )
    with pytest.raises(Unauthorized):
        tokens.verify(same_key, tokens.issue(ACCESS, "u", "s"))
    with pytest.raises(Unauthorized):
        tokens.verify(ACCESS, tokens.issue(same_key, "u", "s"))


def test_expired_token_is_refused_and_leeway_is_honoured():
    past = datetime.now(UTC) - timedelta(seconds=910)  # expired 10 s ago
    token = codec(past).issue(ACCESS, "u", "s")
    with pytest.raises(Unauthorized):
        codec().verify(ACCESS, token)
    assert codec(leeway_s=30).verify(ACCESS, token).sub == "u"


def test_wrong_audience_issuer_or_missing_claims_are_refused():
    now = int(datetime.now(UTC).timestamp())
    base = {
        "sub": "u",
        "sid": "s",
        "jti": "j",
        "iat": now,
        "exp": now + 60,
        "iss": "authsvc",
        "aud": "services",
        "typ": "access",
    }
    tokens = codec()
    assert tokens.verify(ACCESS, jwt.encode(base, ACCESS.secret, algorithm="HS256")).sub == "u"
    for change in ({"aud": "other"}, {"iss": "other"}, {"typ": "refresh"}):
        with pytest.raises(Unauthorized):
            tokens.verify(ACCESS, jwt.encode(base | change, ACCESS.secret, algorithm="HS256"))
    for claim in base:
        partial = {k: v for k, v in base.items() if k != claim}
        with pytest.raises(Unauthorized):
            tokens.verify(ACCESS, jwt.encode(partial, ACCESS.secret, algorithm="HS256"))


def test_algorithm_is_pinned():
    claims = jwt.decode(codec().issue(ACCESS, "u", "s"), options={"verify_signature": False})
    with pytest.raises(Unauthorized):
        codec().verify(ACCESS, jwt.encode(claims, None, algorithm="none"))
    with pytest.raises(Unauthorized):
        codec().verify(ACCESS, jwt.encode(claims, ACCESS.secret * 2, algorithm="HS512"))
