"""GET/HEAD /auth, forward-auth for proxies: who passes, who is refused and how, what a
proxy may cache, and that every revocation is refused at once (on both backends)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.conftest import ACCESS_SECRET
from tests.helpers import (
    CHANGE_PASSWORD,
    LOGOUT,
    LOGOUT_ALL,
    PASSWORD,
    REVOKE_SESSION,
    SESSIONS,
    new_email,
)


async def forward_auth(client, token=None, query="", headers=None, method="GET"):
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return await client.raw(method=method, path="/auth" + query, headers=sent)


async def user_of(client, email=None):
    """(email, access token, refresh token) of a new account."""
    email = email or new_email()
    access, refresh = await client.tokens(email)
    return email, access, refresh


def user_id_of(access: str) -> str:
    return jwt.decode(access, options={"verify_signature": False})["sub"]


async def test_a_valid_token_passes_with_the_identity_headers(client):
    email, access, _ = await user_of(client)
    claims = jwt.decode(access, options={"verify_signature": False})
    for method in ("GET", "HEAD"):
        response = await forward_auth(client, access, method=method)
        assert response.code == 200, response.body
        headers = response.headers
        assert headers["X-Auth-User-Id"] == headers["X-Auth-Request-User"] == claims["sub"]
        assert headers["X-Auth-Email"] == headers["X-Auth-Request-Email"] == email
        assert headers["X-Auth-Session-Id"] == claims["sid"]
        assert headers["Cache-Control"] == "no-store"  # FORWARD_AUTH_CACHE_S=0
        assert response.body == b""


async def test_no_token_is_401_with_a_bare_challenge(client):
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        for method in ("GET", "HEAD"):
            response = await forward_auth(client, headers=headers, method=method)
            assert response.code == 401
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="authsvc"'
            assert response.headers["Cache-Control"] == "no-store"
            assert "X-Auth-User-Id" not in response.headers


async def test_forged_expired_and_wrong_type_tokens_are_invalid_token(client):
    _email, access, refresh = await user_of(client)
    claims = jwt.decode(access, options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-of-thirty-two-bytes!!", algorithm="HS256")
    unsigned = jwt.encode(claims, "", algorithm="none")
    expired = jwt.encode(claims | {"exp": int(time.time()) - 1}, ACCESS_SECRET, algorithm="HS256")
    other_user = jwt.encode(claims | {"sub": "someone-else"}, "x" * 40, algorithm="HS256")
    header, _payload, signature = access.split(".")
    swapped = ".".join(
        [header, base64.urlsafe_b64encode(json.dumps(claims | {"sub": "1"}).encode())
         .rstrip(b"=").decode(), signature]
    )  # fmt: skip
    for token in (forged, unsigned, expired, other_user, swapped, refresh, "garbage",
                  "a.b.c", "x" * 5000):  # fmt: skip
        response = await forward_auth(client, token)
        assert response.code == 401, token[:40]
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="authsvc", error="invalid_token"'
        )
        assert "X-Auth-User-Id" not in response.headers
    for odd in ("Bearer", "Bearer ", "Bearer a b", "bearer  "):
        response = await forward_auth(client, headers={"Authorization": odd})
        assert response.code == 401, odd


async def test_every_revocation_is_refused_at_once(client, services):
    # logout
    _, access, refresh = await user_of(client)
    assert (await forward_auth(client, access)).code == 200
    await client.post(LOGOUT, token=refresh)
    assert (await forward_auth(client, access)).code == 401
    # logoutAll
    _, access, _ = await user_of(client)
    assert (await forward_auth(client, access)).code == 200
    await client.post(LOGOUT_ALL, token=access)
    assert (await forward_auth(client, access)).code == 401
    # revokeSession, from another session of the same account
    email, access, _ = await user_of(client)
    other = json.loads((await client.login(email))["payload"])["access_token"]
    assert (await forward_auth(client, access)).code == 200
    _, body = await client.post(SESSIONS, token=other)
    doomed = next(s["id"] for s in body["data"]["sessions"] if not s["current"])
    await client.post(REVOKE_SESSION, {"id": doomed}, token=other)
    assert (await forward_auth(client, access)).code == 401
    assert (await forward_auth(client, other)).code == 200
    # a password change ends the other sessions
    email, access, _ = await user_of(client)
    changer = json.loads((await client.login(email))["payload"])["access_token"]
    assert (await forward_auth(client, access)).code == 200
    _, body = await client.post(
        CHANGE_PASSWORD, {"current": PASSWORD, "new": "another horse battery"}, token=changer
    )
    assert body["data"]["changePassword"]["status"] == 200, body
    assert (await forward_auth(client, access)).code == 401
    # disable (the admin's command), although the user row was read just before
    email, access, _ = await user_of(client)
    assert (await forward_auth(client, access)).code == 200
    await services.accounts.set_disabled(email, True)
    assert (await forward_auth(client, access)).code == 401
    # delete
    email, access, _ = await user_of(client)
    assert (await forward_auth(client, access)).code == 200
    await services.accounts.delete_user(email)
    assert (await forward_auth(client, access)).code == 401


async def unconfirm(services, backend, user_id: str) -> None:
    """An account whose address is not confirmed (one made while EMAIL_CONFIRMATION
    was on)."""
    mark = "%s" if backend == "servers" else "?"
    async with services.users_db.transaction() as tx:
        await tx.execute(f"UPDATE users SET confirmed = 0 WHERE id = {mark}", (user_id,))  # noqa: S608


async def test_requirements_from_the_query_and_from_headers(client, services, backend):
    _email, access, _ = await user_of(client)  # at example.com, confirmed
    assert (await forward_auth(client, access, "?confirmed=true")).code == 200
    assert (await forward_auth(client, access, "?email_domain=example.com")).code == 200
    assert (await forward_auth(client, access, "?email_domain=Other.org,EXAMPLE.com")).code == 200
    header = {"X-Auth-Require-Email-Domain": "example.com"}
    assert (await forward_auth(client, access, headers=header)).code == 200
    for query, headers in (
        ("?email_domain=other.org", {}),
        ("?email_domain=ample.com", {}),  # no suffix matching
        ("?email_domain=example.com.evil.org", {}),
        ("", {"X-Auth-Require-Email-Domain": "other.org"}),
        # Requirements only add up: the query allows example.com, a header (which a
        # client can send through nginx) narrows it to nothing.
        ("?email_domain=example.com", {"X-Auth-Require-Email-Domain": "other.org"}),
    ):
        response = await forward_auth(client, access, query, headers)
        assert response.code == 403, (query, headers)
        assert "insufficient_scope" in response.headers["WWW-Authenticate"]
        assert json.loads(response.body) == {
            "errors": [{"message": "requirement not met: email_domain"}]
        }
        assert "X-Auth-User-Id" not in response.headers
    # A client cannot relax what the proxy demands by sending its own header.
    _, unconfirmed, _ = await user_of(client)
    await unconfirm(services, backend, user_id_of(unconfirmed))
    response = await forward_auth(
        client, unconfirmed, "?confirmed=true", {"X-Auth-Require-Confirmed": "false"}
    )
    assert response.code == 403
    assert json.loads(response.body)["errors"][0]["message"] == "requirement not met: confirmed"
    assert (await forward_auth(client, unconfirmed)).code == 200  # nothing demanded


async def test_an_unknown_or_malformed_requirement_denies(client):
    _, access, _ = await user_of(client)
    for query, headers in (
        ("?confirmd=true", {}),
        ("?confirmed=yes", {}),
        ("?email_domain=", {}),
        ("?email_domain=" + ",".join(f"d{i}.com" for i in range(17)), {}),
        ("?email_domain=" + "a" * 600, {}),
        ("", {"X-Auth-Require-Admin": "true"}),
    ):
        response = await forward_auth(client, access, query, headers)
        assert response.code == 400, (query, headers)
        assert "X-Auth-User-Id" not in response.headers
    # Even without a token: the configuration is wrong whoever asks.
    assert (await forward_auth(client, None, "?bogus=1")).code == 400


@pytest.mark.settings(forward_auth_cookie="authsvc_at")
async def test_the_token_may_come_in_the_named_cookie(client):
    email, access, _ = await user_of(client)
    response = await forward_auth(client, headers={"Cookie": f"other=1; authsvc_at={access}"})
    assert response.code == 200 and response.headers["X-Auth-Email"] == email
    # The header wins over the cookie, so a stale cookie cannot hide a bad header.
    response = await forward_auth(client, "forged", headers={"Cookie": f"authsvc_at={access}"})
    assert response.code == 401
    response = await forward_auth(client, headers={"Cookie": "authsvc_at=forged"})
    assert response.code == 401 and "invalid_token" in response.headers["WWW-Authenticate"]


async def test_the_cookie_is_ignored_unless_named(client):
    _, access, _ = await user_of(client)
    response = await forward_auth(client, headers={"Cookie": f"authsvc_at={access}"})
    assert response.code == 401


@pytest.mark.settings(forward_auth_cache_s=30, jwt_access_age_s=20)
async def test_a_proxy_may_cache_a_pass_no_longer_than_the_setting_or_the_token(client):
    _, access, _ = await user_of(client)
    response = await forward_auth(client, access)
    assert response.code == 200
    directives = dict(
        part.strip().split("=") for part in response.headers["Cache-Control"].split(",")
    )
    # Capped by the token's expiry (20 s), below the setting (30 s).
    assert 18 <= int(directives["max-age"]) <= 20
    assert directives["s-maxage"] == directives["max-age"]
    assert response.headers["Vary"] == "Authorization"
    # Refusals are never cached.
    assert (await forward_auth(client, "forged")).headers["Cache-Control"] == "no-store"


async def test_an_international_address_goes_out_as_utf8(client):
    email = f"jürgen-{new_email()}"
    _, access, _ = await user_of(client, email)
    response = await forward_auth(client, access)
    assert response.code == 200
    # Tornado hands header values over as Latin-1: the bytes on the wire were UTF-8.
    assert response.headers["X-Auth-Email"].encode("latin-1").decode() == email
