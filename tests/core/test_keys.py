"""The key ring's life-cycle rules: next, signing, retired until its tokens expired,
expired. Time is an injected clock; nothing sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authsvc.core.clock import utc_now
from authsvc.core.errors import Unauthorized
from authsvc.core.keys import KeyRing, asymmetric_key, generate_private_key, hmac_key
from authsvc.core.tokens import TokenCodec, TokenType

ROTATED = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RETENTION_S = 900 + 60


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def three_keys():
    return [asymmetric_key("EdDSA", generate_private_key("EdDSA")) for _ in range(3)]


def ring_at(clock, keys, signing, retired) -> KeyRing:
    return KeyRing(
        "EdDSA", keys, signing.kid, retired=retired, retention_s=RETENTION_S, clock=clock
    )


def published(ring: KeyRing) -> list[str]:
    return [jwk["kid"] for jwk in ring.jwks()["keys"]]


def test_a_retired_key_lives_until_its_longest_token_expired_then_drops_out():
    old, current, upcoming = three_keys()
    clock = Clock(ROTATED + timedelta(seconds=RETENTION_S))  # the last moment
    ring = ring_at(clock, [old, current, upcoming], current, {old.kid: ROTATED})
    assert [ring.state(k).name for k in ring.keys] == ["retired", "signing", "next"]
    assert ring.state(old).until == ROTATED + timedelta(seconds=RETENTION_S)
    assert published(ring) == [old.kid, current.kid, upcoming.kid]
    assert ring.verification_key(old.kid) is old.public

    clock.now += timedelta(seconds=1)  # past it: nobody ran `keys remove`
    assert ring.state(old).name == "expired"
    assert published(ring) == [current.kid, upcoming.kid]
    with pytest.raises(Unauthorized):
        ring.verification_key(old.kid)
    assert ring.verification_key(upcoming.kid) is upcoming.public  # next: published, valid


def test_the_signing_key_ignores_a_stale_record():
    old, current, _ = three_keys()
    clock = Clock(ROTATED + timedelta(days=30))
    ring = ring_at(clock, [old, current], current, {current.kid: ROTATED})
    assert ring.state(current).name == "signing"
    assert ring.verification_key(current.kid) is current.public


def test_a_former_key_without_a_record_stays_until_removed():
    old, current, upcoming = three_keys()
    ring = ring_at(Clock(ROTATED + timedelta(days=365)), [old, current, upcoming], current, {})
    assert ring.state(old).name == "retired" and ring.state(old).until is None
    assert ring.state(upcoming).name == "next"
    assert published(ring) == [old.kid, current.kid, upcoming.kid]


def test_a_token_of_an_expired_key_is_refused_even_before_its_exp():
    """The ring's rule, apart from the token's own expiry: a token that claims a later
    exp than the retirement allows (say, minted with a stolen retired key) is refused."""
    old, current, _ = three_keys()
    rotated = utc_now()  # PyJWT checks exp against the real time
    clock = Clock(rotated)
    refresh = TokenType("refresh", KeyRing("HS256", [hmac_key("r" * 32)]), 60)

    def codec(ring: KeyRing, lifetime_s: int) -> TokenCodec:
        return TokenCodec(
            access=TokenType("access", ring, lifetime_s), refresh=refresh,
            issuer="authsvc", audience="authsvc", leeway_s=0, clock=clock,
        )  # fmt: skip

    signer = codec(ring_at(clock, [old], old, {}), lifetime_s=10 * RETENTION_S)
    token = signer.issue(signer.access, "user", "session")
    verifier = codec(ring_at(clock, [old, current], current, {old.kid: rotated}), 900)
    verifier.verify(verifier.access, token, keep=False)
    clock.now += timedelta(seconds=RETENTION_S + 1)
    with pytest.raises(Unauthorized):
        verifier.verify(verifier.access, token, keep=False)


def test_a_new_ring_forgets_verified_claims():
    """`keys remove` must end a key's tokens at once, even those verified before."""
    old, current, _ = three_keys()
    clock = Clock(utc_now())
    refresh = TokenType("refresh", KeyRing("HS256", [hmac_key("r" * 32)]), 60)
    tokens = TokenCodec(
        access=TokenType("access", ring_at(clock, [old, current], old, {}), 900),
        refresh=refresh, issuer="authsvc", audience="authsvc", leeway_s=0, clock=clock,
    )  # fmt: skip
    token = tokens.issue(tokens.access, "user", "session")
    tokens.verify(tokens.access, token)  # now cached
    tokens.use_access_ring(ring_at(clock, [current], current, {}))
    with pytest.raises(Unauthorized):
        tokens.verify(tokens.access, token)
    fresh = tokens.issue(tokens.access, "user", "session")  # signed with the new key
    assert tokens.verify(tokens.access, fresh).sub == "user"
