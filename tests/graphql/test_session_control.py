"""Session control through the app: the online check, sessions, revocation, logoutAll,
changePassword, disabled accounts."""

from __future__ import annotations

import json

import pytest

from tests.helpers import (
    CHANGE_PASSWORD,
    LOGOUT,
    LOGOUT_ALL,
    ME,
    PASSWORD,
    REFRESH,
    RENEW,
    REVOKE_SESSION,
    SESSIONS,
    error_code,
    new_email,
    unauthorized,
)


async def second_login(client, email, user_agent="second-device/1.0"):
    _, body = await client.post(
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { payload } }",
        {"e": email, "p": PASSWORD},
        headers={"User-Agent": user_agent},
    )
    payload = json.loads(body["data"]["login"]["payload"])
    return payload["access_token"], payload["refresh_token"]


async def test_me_refuses_the_access_token_of_an_ended_session(client):
    access, refresh = await client.tokens()
    await client.post(LOGOUT, token=refresh)
    _, body = await client.post(ME, token=access)
    assert unauthorized(body, "me")


async def test_sessions_lists_the_users_own_with_the_current_one_marked(client):
    email = new_email()
    first_access, _ = await client.tokens(email)
    second_access, _ = await second_login(client, email)
    await client.tokens()  # someone else's session is not listed
    _, body = await client.post(SESSIONS, token=second_access)
    sessions = body["data"]["sessions"]
    assert len(sessions) == 2
    assert [s["current"] for s in sessions] == [False, True]  # oldest first
    assert sessions[1]["userAgent"] == "second-device/1.0"
    assert sessions[0]["ip"] == "127.0.0.1"
    assert all(s["createdAt"] <= s["lastUsedAt"] < s["expiresAt"] for s in sessions)
    _, body = await client.post(SESSIONS, token=first_access)
    assert [s["current"] for s in body["data"]["sessions"]] == [True, False]


async def test_sessions_needs_an_access_token(client):
    _, refresh = await client.tokens()
    _, body = await client.post(SESSIONS, token=refresh)
    assert unauthorized(body, "sessions")


async def test_revoke_session_ends_only_the_users_own(client):
    email = new_email()
    access, _ = await client.tokens(email)
    _, other_refresh = await second_login(client, email)
    stranger_access, stranger_refresh = await client.tokens()
    _, body = await client.post(SESSIONS, token=stranger_access)
    stranger_sid = body["data"]["sessions"][0]["id"]
    _, body = await client.post(REVOKE_SESSION, {"id": stranger_sid}, token=access)
    assert body == {"data": {"revokeSession": False}}
    _, body = await client.post(REFRESH, token=stranger_refresh)
    assert body["data"]["refresh"]  # untouched

    _, body = await client.post(SESSIONS, token=access)
    other_sid = next(s["id"] for s in body["data"]["sessions"] if not s["current"])
    _, body = await client.post(REVOKE_SESSION, {"id": other_sid}, token=access)
    assert body == {"data": {"revokeSession": True}}
    _, body = await client.post(REFRESH, token=other_refresh)
    assert unauthorized(body, "refresh")
    _, body = await client.post(ME, token=access)
    assert "errors" not in body


async def test_logout_all_ends_every_session_of_the_user(client):
    email = new_email()
    access, refresh = await client.tokens(email)
    _, other_refresh = await second_login(client, email)
    _, stranger_refresh = await client.tokens()
    _, body = await client.post(LOGOUT_ALL, token=access)
    assert body == {"data": {"logoutAll": True}}
    for token in (refresh, other_refresh):
        _, body = await client.post(REFRESH, token=token)
        assert unauthorized(body, "refresh")
    _, body = await client.post(ME, token=access)
    assert unauthorized(body, "me")
    _, body = await client.post(REFRESH, token=stranger_refresh)
    assert body["data"]["refresh"]


async def test_change_password(client):
    email = new_email()
    access, refresh = await client.tokens(email)
    _, other_refresh = await second_login(client, email)
    change = {"current": "not my password", "new": "a brand new passphrase"}
    _, body = await client.post(CHANGE_PASSWORD, change, token=access)
    assert body["data"]["changePassword"] == {
        "status": 401,
        "errors": [{"path": "currentPassword", "message": "invalid password"}],
        "payload": None,
    }
    _, body = await client.post(
        CHANGE_PASSWORD, {"current": PASSWORD, "new": "password"}, token=access
    )
    assert body["data"]["changePassword"]["errors"] == [
        {"path": "newPassword", "message": "newPassword is too common"}
    ]
    _, body = await client.post(
        CHANGE_PASSWORD, {"current": PASSWORD, "new": "a brand new passphrase"}, token=access
    )
    assert body["data"]["changePassword"] == {"status": 200, "errors": [], "payload": None}
    assert (await client.login(email))["status"] == 401
    assert (await client.login(email, "a brand new passphrase"))["status"] == 200
    _, body = await client.post(REFRESH, token=other_refresh)  # other sessions end
    assert unauthorized(body, "refresh")
    _, body = await client.post(REFRESH, token=refresh)  # this one goes on
    assert body["data"]["refresh"]


async def test_disabled_user_loses_every_session_and_is_refused(client, services):
    email = new_email()
    access, refresh = await client.tokens(email)
    await services.accounts.set_disabled(email, True)
    for query, field in ((ME, "me"), (REFRESH, "refresh"), (SESSIONS, "sessions")):
        _, body = await client.post(query, token=access if field != "refresh" else refresh)
        assert unauthorized(body, field)
    _, body = await client.post(RENEW, token=refresh)
    assert error_code(body) == "UNAUTHENTICATED"
    assert (await client.login(email))["errors"] == [{"path": "email", "message": "invalid login"}]
    await services.accounts.set_disabled(email, False)
    assert (await client.login(email))["status"] == 200


@pytest.mark.settings(password_min_length=7)
async def test_the_node_services_minimum_of_7_stays_reachable(client):
    result = await client.register(new_email(), "abc12")
    assert result["errors"] == [
        {"path": "password", "message": "password must be at least 7 characters"}
    ]
