"""POST /introspect (RFC 7662): only with a configured client secret."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest

from tests.helpers import LOGOUT, RENEW

CLIENT_SECRET = "introspection-secret-0123456789abcdefgh"


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


async def introspect(client, token: str, headers: dict[str, str] | None = None):
    response = await client.raw(
        path="/introspect",
        body=urlencode({"token": token}),
        headers={"Content-Type": "application/x-www-form-urlencoded"}
        | (headers if headers is not None else basic("introspect", CLIENT_SECRET)),
    )
    return response.code, json.loads(response.body)


async def test_not_reachable_without_a_configured_secret(client):
    access, _ = await client.tokens()
    code, _ = await introspect(client, access)
    assert code == 404


@pytest.mark.settings(introspection_client_secret=CLIENT_SECRET)
async def test_wrong_or_missing_client_credentials_are_401(client):
    access, _ = await client.tokens()
    for headers in (
        {},
        basic("introspect", "wrong"),
        basic("other", CLIENT_SECRET),
        {"Authorization": "Basic !!!"},
        {"Authorization": f"Bearer {access}"},
    ):
        code, body = await introspect(client, access, headers)
        assert (code, body) == (401, {"error": "invalid_client"}), headers


@pytest.mark.settings(introspection_client_secret=CLIENT_SECRET)
async def test_active_access_and_refresh_tokens(client):
    access, refresh = await client.tokens()
    code, body = await introspect(client, access)
    assert code == 200 and body["active"] is True
    assert body["token_type"] == "access_token"
    assert {"sub", "sid", "jti", "iat", "exp", "iss", "aud"} <= set(body)
    code, body = await introspect(client, refresh)
    assert body["active"] is True and body["token_type"] == "refresh_token"


@pytest.mark.settings(introspection_client_secret=CLIENT_SECRET)
async def test_inactive_tokens_say_only_so(client):
    access, refresh = await client.tokens()
    _, renewed = await client.post(RENEW, token=refresh)
    assert (await introspect(client, refresh))[1] == {"active": False}  # spent
    await client.post(LOGOUT, token=renewed["data"]["renew"]["refreshToken"])
    assert (await introspect(client, access))[1] == {"active": False}  # session ended
    assert (await introspect(client, "garbage"))[1] == {"active": False}
    code, body = await introspect(client, "")
    assert code == 400 and body["error"] == "invalid_request"
