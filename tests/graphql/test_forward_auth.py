"""GET/HEAD /auth, forward-auth for proxies: who passes, who is refused and how, what a
proxy may cache, and that every revocation is refused at once (on both backends)."""

from __future__ import annotations

import asyncio
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
    """An account whose address is not confirmed (one made before EMAIL_CONFIRMATION
    was switched on, and let in while it was off)."""
    mark = "%s" if backend == "servers" else "?"
    async with services.users_db.transaction() as tx:
        await tx.execute(f"UPDATE users SET confirmed = 0 WHERE id = {mark}", (user_id,))  # noqa: S608


async def confirmed_user(client, services, email=None):
    """(email, access token) of an account whose address is confirmed, on a server with
    EMAIL_CONFIRMATION=true (confirmed by the admin command's path)."""
    email = email or new_email()
    assert (await client.register(email))["status"] == 201
    await services.accounts.confirm_email(email)
    result = await client.login(email)
    assert result["status"] == 200, result
    return email, json.loads(result["payload"])["access_token"]


@pytest.mark.settings(email_confirmation=True)
async def test_requirements_from_the_query_and_from_headers(client, services, backend):
    _, access = await confirmed_user(client, services)  # at example.com
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
    # A client cannot relax what the proxy demands by sending its own header, and an
    # address at the right domain passes only once it is confirmed.
    _, unconfirmed = await confirmed_user(client, services)
    await unconfirm(services, backend, user_id_of(unconfirmed))
    for query, headers in (
        ("?confirmed=true", {"X-Auth-Require-Confirmed": "false"}),
        ("?email_domain=example.com", {}),
    ):
        response = await forward_auth(client, unconfirmed, query, headers)
        assert response.code == 403
        assert json.loads(response.body)["errors"][0]["message"] == (
            "requirement not met: confirmed"
        )
    assert (await forward_auth(client, unconfirmed)).code == 200  # nothing demanded


async def test_address_requirements_need_email_confirmation(client):
    """With EMAIL_CONFIRMATION off every account is "confirmed" at registration: anyone
    could register alice@corp.com, so neither requirement can be kept, and both deny."""
    _, access, _ = await user_of(client)
    for query in ("?confirmed=true", "?email_domain=example.com", "?confirmed=false"):
        response = await forward_auth(client, access, query)
        assert response.code == 400, query
        assert "EMAIL_CONFIRMATION=true" in json.loads(response.body)["errors"][0]["message"]
        assert "X-Auth-User-Id" not in response.headers
    response = await forward_auth(client, access, headers={"X-Auth-Require-Confirmed": "true"})
    assert response.code == 403


@pytest.mark.settings(email_confirmation=True)
async def test_an_unknown_or_malformed_requirement_denies(client, services):
    _, access = await confirmed_user(client, services)
    # In the query: the proxy's configuration is wrong (400; nginx shows a 500).
    for query in (
        "?confirmd=true",
        "?confirmed=yes",
        "?email_domain=",
        "?email_domain=" + ",".join(f"d{i}.com" for i in range(17)),
        "?email_domain=" + "a" * 600,
    ):
        response = await forward_auth(client, access, query)
        assert response.code == 400, query
        assert "X-Auth-User-Id" not in response.headers
    # In a header, which the client may have sent itself: its request is denied (403),
    # not failed.
    for headers in ({"X-Auth-Require-Admin": "true"}, {"X-Auth-Require-Confirmed": "yes"}):
        response = await forward_auth(client, access, headers=headers)
        assert response.code == 403, headers
        assert "X-Auth-User-Id" not in response.headers
    # Without a token the answer is the challenge, whatever else came.
    response = await forward_auth(client, None, "?bogus=1", {"X-Auth-Require-Foo": "1"})
    assert response.code == 401


async def test_a_client_s_own_identity_headers_deny_its_request(client):
    """nginx hands the client's headers to /auth: an X-Auth-* name authsvc does not
    read (X-Auth-Groups, X-Auth-Roles …) is the client's own, and the proxy overwrites
    only the names it sets, so an upstream reading it could be fed anything."""
    _, access, _ = await user_of(client)
    for name in ("X-Auth-User-Id", "X-Auth-Groups", "x-auth-roles", "X-Auth-Request-Redirect"):
        response = await forward_auth(client, access, headers={name: "admin"})
        assert response.code == 403, name
        assert "X-Auth-User-Id" not in response.headers
    response = await forward_auth(client, access, headers={"X-Authorization": "x"})
    assert response.code == 200  # not an X-Auth-* name


async def test_no_etag_so_no_304_for_nginx_to_fail_on(client):
    _, access, _ = await user_of(client)
    response = await forward_auth(client, access)
    assert response.code == 200 and "Etag" not in response.headers
    for tag in ("*", '"da39a3ee5e6b4b0d3255bfef95601890afd80709"'):
        response = await forward_auth(client, access, headers={"If-None-Match": tag})
        assert response.code == 200, tag


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


@pytest.mark.settings(forward_auth_cache_s=30, email_confirmation=True, forward_auth_cookie="at")
async def test_a_cached_pass_is_keyed_on_the_requirement_headers_too(client, services):
    """A cache that stored a lenient location's pass must not hand it to a strict one:
    the requirement headers it carried are in Vary. A cookie's pass depends on the
    request's method and site, so it is not cacheable at all."""
    _, access = await confirmed_user(client, services)
    headers = {"X-Auth-Require-Email-Domain": "example.com", "x-auth-require-confirmed": "true"}
    response = await forward_auth(client, access, headers=headers)
    assert response.code == 200
    assert response.headers["Vary"] == (
        "Authorization, X-Auth-Require-Confirmed, X-Auth-Require-Email-Domain"
    )
    response = await forward_auth(client, headers={"Cookie": f"at={access}"})
    assert response.code == 200 and response.headers["Cache-Control"] == "no-store"


@pytest.mark.settings(forward_auth_cookie="at")
async def test_a_cookie_does_not_carry_a_cross_site_change(client):
    """A browser sends the cookie with another site's form too (CSRF): a change
    (X-Forwarded-Method) passes only when the browser says it is same-origin."""
    _, access, _ = await user_of(client)
    cookie = {"Cookie": f"at={access}"}
    for extra, allowed in (
        ({"X-Forwarded-Method": "GET", "Sec-Fetch-Site": "cross-site"}, True),  # a link
        ({"X-Forwarded-Method": "POST", "Sec-Fetch-Site": "same-origin"}, True),
        ({"X-Forwarded-Method": "POST", "Sec-Fetch-Site": "none"}, True),  # typed URL
        ({"X-Forwarded-Method": "POST", "Sec-Fetch-Site": "cross-site"}, False),
        ({"X-Forwarded-Method": "DELETE", "Sec-Fetch-Site": "same-site"}, False),
        ({"X-Forwarded-Method": "post", "Origin": "https://evil.example"}, False),
        ({"X-Forwarded-Method": "PUT", "Origin": "http://127.0.0.1:1"}, False),
        ({"X-Forwarded-Method": "POST"}, True),  # no browser's cross-site form
        ({"X-Forwarded-Method": "PATCH", "Origin": "null"}, False),
        # From the second attack: no method named (a proxy configured before), a
        # cross-site WebSocket, an Origin no browser sends (was a 500).
        ({"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, False),
        ({"Sec-Fetch-Site": "same-origin"}, True),
        (
            {
                "X-Forwarded-Method": "GET",
                "Sec-Fetch-Mode": "websocket",
                "Sec-Fetch-Site": "same-site",
            },
            False,
        ),
        (
            {
                "X-Forwarded-Method": "GET",
                "Sec-Fetch-Mode": "websocket",
                "Sec-Fetch-Site": "same-origin",
            },
            True,
        ),
        ({"X-Forwarded-Method": "POST", "Origin": "http://[x"}, False),
    ):
        response = await forward_auth(client, headers=cookie | extra)
        assert (response.code == 200) is allowed, (extra, response.code)
        if not allowed:
            assert response.code == 403
            assert "X-Auth-User-Id" not in response.headers
    # The same origin as the request's host passes; a Bearer header is no CSRF risk.
    own = {"Cookie": f"at={access}", "X-Forwarded-Method": "POST", "Host": "app.example",
           "X-Forwarded-Proto": "https"}  # fmt: skip
    response = await client.raw("GET", "/auth", headers=own | {"Origin": "https://app.example"})
    assert response.code == 200
    # The whole origin counts: another scheme or port is another origin (the third
    # attack: only the host was compared).
    for origin in ("http://app.example", "https://app.example:8443", "https://APP.example.",
                   "https://app.example, https://evil.example", "*"):  # fmt: skip
        response = await client.raw("GET", "/auth", headers=own | {"Origin": origin})
        assert response.code == 403, origin
    bearer = {"Authorization": f"Bearer {access}"}
    response = await forward_auth(
        client, headers=bearer | {"X-Forwarded-Method": "POST", "Sec-Fetch-Site": "cross-site"}
    )
    assert response.code == 200


async def test_an_international_address_goes_out_as_utf8(client):
    email = f"jürgen-{new_email()}"
    _, access, _ = await user_of(client, email)
    response = await forward_auth(client, access)
    assert response.code == 200
    # Tornado hands header values over as Latin-1: the bytes on the wire were UTF-8.
    assert response.headers["X-Auth-Email"].encode("latin-1").decode() == email


@pytest.mark.settings(forward_auth_cookie="at", public_url="https://app.example.com/auth")
async def test_with_public_url_the_own_origin_is_public_url_s(client):
    _, access, _ = await user_of(client)
    change = {"Cookie": f"at={access}", "X-Forwarded-Method": "DELETE",
              "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}  # fmt: skip
    assert (
        await forward_auth(client, headers=change | {"Origin": "https://app.example.com"})
    ).code == 200
    assert (
        await forward_auth(client, headers=change | {"Origin": "https://evil.example"})
    ).code == 403


async def test_twenty_checks_racing_a_logout_all_never_pass_after_it(client):
    """Revocation wins: of 20 checks sent beside a logoutAll, those that pass were
    answered before it returned; every check after it is refused."""
    _, access, _ = await user_of(client)
    racing = [asyncio.ensure_future(forward_auth(client, access)) for _ in range(20)]
    await client.post(LOGOUT_ALL, token=access)
    answers = await asyncio.gather(*racing)
    assert {response.code for response in answers} <= {200, 401}
    after = await asyncio.gather(*(forward_auth(client, access) for _ in range(20)))
    assert [response.code for response in after] == [401] * 20
