"""A login's session lives in Redis for JWT_REFRESH_AGE_S, under the user's hash tag."""

from __future__ import annotations

import time

import jwt
import pytest
import redis

pytestmark = pytest.mark.parametrize("backend", ["servers"], indirect=True)


async def test_session_ttl_is_the_refresh_lifetime(client, settings, redis_server):
    _, refresh = await client.tokens()
    claims = jwt.decode(refresh, options={"verify_signature": False})
    key = f"{settings.redis_key_prefix}session:{{{claims['sub']}}}:{claims['sid']}"
    raw = redis.Redis.from_url(redis_server.url)
    try:
        expires_at_ms = raw.pexpiretime(key)
        expected_ms = (claims["iat"] + settings.jwt_refresh_age_s) * 1000
        assert abs(expires_at_ms - expected_ms) < 1500  # iat is whole seconds
        assert 0 < raw.pttl(key) <= settings.jwt_refresh_age_s * 1000
        assert expires_at_ms > time.time() * 1000
    finally:
        raw.close()
