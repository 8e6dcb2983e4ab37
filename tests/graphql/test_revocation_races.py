"""Revocation wins every race (DESIGN §6): a login in flight, its password still being
hashed, when the account is disabled, deleted, given a new password or logged out
everywhere, must not leave a session behind.

The hash is held with real bcrypt work: the user's stored hash is made at a high cost,
so the login's verification takes about a second while the revocation runs; each
test checks that the revocation began and ended while the login was in flight.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sqlite3
from contextlib import closing

import bcrypt
import pytest

from tests.helpers import (
    CHANGE_PASSWORD,
    LOGOUT,
    LOGOUT_ALL,
    ME,
    PASSWORD,
    REFRESH,
    RENEW,
    SESSIONS,
    error_code,
    new_email,
    unauthorized,
)

#: bcrypt cost of the stored hash: about a second per verification here.
SLOW_ROUNDS = 14
INVALID_LOGIN = [{"path": "email", "message": "invalid login"}]


@functools.cache
def slow_hash() -> str:
    """A hash of PASSWORD at SLOW_ROUNDS (made once: it takes a second)."""
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(SLOW_ROUNDS)).decode()


def store_password_hash(settings, mysql_server, user_id: str, password_hash: str) -> None:
    """Write the hash into the users database itself (what a user imported from an older
    service with a dearer cost would have)."""
    if settings.users_backend == "mysql":
        with mysql_server.connect(settings.db_name) as conn, conn.cursor() as cursor:
            cursor.execute(
                "UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id)
            )
            assert cursor.rowcount == 1
    else:
        with closing(sqlite3.connect(settings.sqlite_path)) as conn, conn:
            changed = conn.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            ).rowcount
            assert changed == 1


async def slow_user(client, settings, mysql_server) -> tuple[str, str]:
    """A new account whose login takes about a second of hashing: its email and id."""
    email = new_email()
    user_id = json.loads((await client.register(email))["payload"])["id"]
    store_password_hash(settings, mysql_server, user_id, slow_hash())
    return email, user_id


async def tokens_of(client, settings, mysql_server, email: str, user_id: str) -> tuple[str, str]:
    """Tokens of a login, the slow hash put back after it: a successful login replaces a
    hash of other rounds than BCRYPT_ROUNDS (the next login would be quick)."""
    result = await client.login(email)
    assert result["status"] == 200, result
    store_password_hash(settings, mysql_server, user_id, slow_hash())
    payload = json.loads(result["payload"])
    return payload["access_token"], payload["refresh_token"]


async def assert_no_session_survived(client, login_result) -> None:
    """The login that was in flight during the revocation got nothing that works."""
    if login_result["status"] == 200:  # it made a session: that session must be dead
        payload = json.loads(login_result["payload"])
        _, body = await client.post(REFRESH, token=payload["refresh_token"])
        assert unauthorized(body, "refresh"), "the late session still refreshes"
        _, body = await client.post(ME, token=payload["access_token"])
        assert unauthorized(body, "me"), "the late session still answers me"
        _, body = await client.post(RENEW, token=payload["refresh_token"])
        assert error_code(body) == "UNAUTHENTICATED", "the late session still renews"
    assert login_result["errors"] == INVALID_LOGIN


async def race(client, email: str, revoke, after_s: float):
    """Start a login of ``email``, run ``revoke()`` ``after_s`` into it (while its
    password is being hashed) and return the login's answer. Fails unless the
    revocation ended before the login did: otherwise nothing raced."""
    login = asyncio.ensure_future(client.login(email))
    await asyncio.sleep(after_s)
    assert not login.done(), "the login ended before the revocation began"
    await revoke()
    assert not login.done(), "the login ended before the revocation did"
    return await login


async def test_a_login_in_flight_loses_to_disable(client, services, settings, mysql_server):
    email, _ = await slow_user(client, settings, mysql_server)
    result = await race(client, email, lambda: services.accounts.set_disabled(email, True), 0.3)
    await assert_no_session_survived(client, result)


async def test_a_login_in_flight_loses_to_delete(client, services, settings, mysql_server):
    email, _ = await slow_user(client, settings, mysql_server)
    result = await race(client, email, lambda: services.accounts.delete_user(email), 0.3)
    await assert_no_session_survived(client, result)


async def test_a_login_in_flight_loses_to_the_admins_revoke_all(
    client, services, settings, mysql_server
):
    """`authsvc sessions revoke EMAIL --all`."""
    email, _ = await slow_user(client, settings, mysql_server)
    result = await race(client, email, lambda: services.sessions.end_sessions_of(email), 0.3)
    await assert_no_session_survived(client, result)


async def test_a_login_in_flight_loses_to_logout_all(client, settings, mysql_server):
    email, user_id = await slow_user(client, settings, mysql_server)
    access, refresh = await tokens_of(client, settings, mysql_server, email, user_id)

    async def logout_all():
        _, body = await client.post(LOGOUT_ALL, token=access)
        assert body == {"data": {"logoutAll": True}}

    result = await race(client, email, logout_all, 0.3)
    await assert_no_session_survived(client, result)
    _, body = await client.post(REFRESH, token=refresh)
    assert unauthorized(body, "refresh")
    assert (await client.login(email))["status"] == 200  # a login after it is welcome


async def test_a_login_in_flight_with_the_old_password_loses_to_change_password(
    client, settings, mysql_server
):
    email, user_id = await slow_user(client, settings, mysql_server)
    access, refresh = await tokens_of(client, settings, mysql_server, email, user_id)

    async def change_password():
        # The same password at the lowest cost, so that the change's own check of it
        # takes no time and it ends long before the login's slow one.
        cheap = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
        store_password_hash(settings, mysql_server, user_id, cheap)
        new = {"current": PASSWORD, "new": "a brand new passphrase"}
        _, body = await client.post(CHANGE_PASSWORD, new, token=access)
        assert body["data"]["changePassword"]["status"] == 200

    result = await race(client, email, change_password, 0.3)
    await assert_no_session_survived(client, result)
    # The caller's own session goes on under the new epoch.
    _, body = await client.post(REFRESH, token=refresh)
    assert body["data"]["refresh"]
    _, body = await client.post(ME, token=access)
    assert body["data"]["me"]["email"] == email
    assert (await client.login(email, "a brand new passphrase"))["status"] == 200


async def test_a_disabled_or_deleted_users_tokens_all_fail_at_once(client, services):
    for revoke in ("disable", "delete"):
        email = new_email()
        access, refresh = await client.tokens(email)
        if revoke == "disable":
            await services.accounts.set_disabled(email, True)
        else:
            await services.accounts.delete_user(email)
        for query, field, token in (
            (REFRESH, "refresh", refresh),
            (ME, "me", access),
            (SESSIONS, "sessions", access),
        ):
            _, body = await client.post(query, token=token)
            assert unauthorized(body, field), (revoke, field)
        _, body = await client.post(RENEW, token=refresh)
        assert error_code(body) == "UNAUTHENTICATED", revoke
        for token in (access, refresh):
            assert await services.sessions.introspect(token) is None, revoke


@pytest.mark.settings(refresh_reuse_grace_s=0)
async def test_logout_with_a_renewed_away_token_is_a_reuse(client, caplog):
    """A spent refresh token presented to logout was copied: reported, as for renew."""
    caplog.set_level(logging.INFO, logger="authsvc")
    _, spent = await client.tokens()
    _, body = await client.post(RENEW, token=spent)
    current = body["data"]["renew"]["refreshToken"]
    caplog.clear()
    _, body = await client.post(LOGOUT, token=spent)
    assert unauthorized(body, "logout")
    reuse = [r for r in caplog.records if getattr(r, "event", "") == "refresh_reuse_detected"]
    assert len(reuse) == 1 and reuse[0].levelno == logging.WARNING
    _, body = await client.post(REFRESH, token=current)  # the whole family ended
    assert unauthorized(body, "refresh")


async def test_logout_inside_the_grace_window_is_no_reuse(client, caplog):
    """A client that lost a renew answer and logs out with the parent just ends it."""
    caplog.set_level(logging.INFO, logger="authsvc")
    _, parent = await client.tokens()
    _, body = await client.post(RENEW, token=parent)
    current = body["data"]["renew"]["refreshToken"]
    _, body = await client.post(LOGOUT, token=parent)
    assert body == {"data": {"logout": True}}
    assert not [r for r in caplog.records if getattr(r, "event", "") == "refresh_reuse_detected"]
    _, body = await client.post(REFRESH, token=current)
    assert unauthorized(body, "refresh")
