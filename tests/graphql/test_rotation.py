"""Refresh token rotation (`renew`) and reuse detection, through the app."""

from __future__ import annotations

import asyncio
import json
import logging

import jwt
import pytest

from tests.helpers import LOGIN, ME, PASSWORD, REFRESH, RENEW, error_code, new_email


def jti(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["jti"]


async def renew(client, refresh_token):
    _, body = await client.post(RENEW, token=refresh_token)
    return body


async def test_login_offers_the_tokens_as_typed_fields_too(client):
    email = new_email()
    await client.register(email)
    _, body = await client.post(
        LOGIN.replace(
            "payload }", "payload tokens { accessToken refreshToken expiresIn tokenType } }"
        ),
        {"email": email, "password": PASSWORD},
    )
    login = body["data"]["login"]
    payload = json.loads(login["payload"])
    assert login["tokens"] == {
        "accessToken": payload["access_token"],
        "refreshToken": payload["refresh_token"],
        "expiresIn": 900,
        "tokenType": "Bearer",
    }


async def test_renew_returns_a_working_pair(client):
    _, refresh = await client.tokens()
    pair = (await renew(client, refresh))["data"]["renew"]
    assert pair["expiresIn"] == 900 and pair["tokenType"] == "Bearer"
    assert jti(pair["refreshToken"]) != jti(refresh)
    _, body = await client.post(ME, token=pair["accessToken"])
    assert "errors" not in body
    assert (await renew(client, pair["refreshToken"]))["data"]["renew"]


@pytest.mark.settings(refresh_reuse_grace_s=0)
async def test_reuse_after_the_window_revokes_the_whole_family(client, caplog):
    caplog.set_level(logging.WARNING, logger="authsvc.audit")
    _, first = await client.tokens()
    second = (await renew(client, first))["data"]["renew"]
    third = (await renew(client, second["refreshToken"]))["data"]["renew"]
    assert error_code(await renew(client, first)) == "UNAUTHENTICATED"  # a thief's replay
    # The family is revoked: the newest tokens die too.
    assert error_code(await renew(client, third["refreshToken"])) == "UNAUTHENTICATED"
    _, body = await client.post(ME, token=third["accessToken"])
    assert error_code(body) == "UNAUTHENTICATED"
    assert "event=refresh_reuse_detected" in caplog.text
    assert first not in caplog.text and third["refreshToken"] not in caplog.text


@pytest.mark.settings(refresh_reuse_grace_s=0)
async def test_parent_after_the_window_revokes(client):
    _, first = await client.tokens()
    second = (await renew(client, first))["data"]["renew"]
    assert error_code(await renew(client, first)) == "UNAUTHENTICATED"
    assert error_code(await renew(client, second["refreshToken"])) == "UNAUTHENTICATED"


@pytest.mark.settings(refresh_reuse_grace_s=0)
async def test_non_rotating_refresh_with_a_spent_token_revokes_too(client):
    _, first = await client.tokens()
    second = (await renew(client, first))["data"]["renew"]
    _, body = await client.post(REFRESH, token=first)
    assert error_code(body) == "UNAUTHENTICATED"
    _, body = await client.post(REFRESH, token=second["refreshToken"])
    assert error_code(body) == "UNAUTHENTICATED"


async def test_parent_retry_inside_the_window_gets_a_working_pair(client):
    _, first = await client.tokens()
    second = (await renew(client, first))["data"]["renew"]
    retried = (await renew(client, first))["data"]["renew"]  # the response was lost
    assert jti(retried["refreshToken"]) == jti(second["refreshToken"])
    third = (await renew(client, retried["refreshToken"]))["data"]["renew"]
    assert third and "errors" not in await renew(client, third["refreshToken"])


async def test_grandparent_inside_the_window_revokes(client):
    _, first = await client.tokens()
    second = (await renew(client, first))["data"]["renew"]
    third = (await renew(client, second["refreshToken"]))["data"]["renew"]
    assert error_code(await renew(client, first)) == "UNAUTHENTICATED"
    assert error_code(await renew(client, third["refreshToken"])) == "UNAUTHENTICATED"


async def test_50_parallel_renewals_leave_exactly_one_lineage(client):
    _, first = await client.tokens()
    bodies = await asyncio.gather(*(renew(client, first) for _ in range(50)))
    pairs = [body["data"]["renew"] for body in bodies]
    assert len({jti(pair["refreshToken"]) for pair in pairs}) == 1
    onward = (await renew(client, pairs[0]["refreshToken"]))["data"]["renew"]
    assert (await renew(client, onward["refreshToken"]))["data"]["renew"]


@pytest.mark.settings(refresh_rotation="required")
async def test_rotation_required_turns_refresh_away_naming_renew(client):
    _, refresh = await client.tokens()
    _, body = await client.post(REFRESH, token=refresh)
    assert body["data"] is None
    assert error_code(body) == "ROTATION_REQUIRED"
    assert "renew" in body["errors"][0]["message"]
    assert (await renew(client, refresh))["data"]["renew"]
