"""Every event type, emitted by the real operation (GraphQL over HTTP, or the account
service methods the `authsvc users …` commands call), delivered to a real receiver on
loopback, on MariaDB + Redis and on the embedded store: the right payload, signed so
that the Standard Webhooks reference library verifies it under each of the endpoint's
secrets, and never a token, password, hash or email in it."""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from authsvc.core.events import EVENT_TYPES, NO_EVENTS
from tests.helpers import (
    CHANGE_PASSWORD,
    LOGOUT,
    LOGOUT_ALL,
    ME,
    PASSWORD,
    RENEW,
    REVOKE_SESSION,
    SESSIONS,
    new_email,
)
from tests.webhook_receiver import Delivery
from tests.webhooks.conftest import SECRETS, new_secret

NEW_PASSWORD = "another passphrase 77"
RESET = """mutation($token: String!, $password: String!) {
  resetPassword(token: $token, newPassword: $password) { status errors { path message } }
}"""
REQUEST_RESET = """mutation($email: String!) {
  requestPasswordReset(email: $email) { status errors { path message } }
}"""
REQUEST_CHANGE = """mutation($email: String!, $password: String!) {
  requestEmailChange(newEmail: $email, currentPassword: $password) { status }
}"""
CONFIRM_CHANGE = "mutation($token: String!) { confirmEmailChange(token: $token) { status } }"
CONFIRM = "mutation($token: String!) { confirmEmail(token: $token) { status } }"
#: What no event may carry: an email's @, a JWT's start, a bcrypt hash's, a password.
FORBIDDEN = (b"@", b"eyJ", b"$2b$", PASSWORD.encode(), NEW_PASSWORD.encode())
DATA_KEYS = {"user_id", "session_id", "reason", "sessions", "locked_for_s"}


def verified(delivery: Delivery) -> dict:
    """The event, after the reference library verified it under every secret of /a."""
    for secret in SECRETS["/a"]:
        Webhook(secret).verify(delivery.body, delivery.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(delivery.body, delivery.headers)
    event = delivery.event
    assert delivery.headers["webhook-id"] == event["id"]
    assert delivery.headers["content-type"] == "application/json"
    assert event["type"] in EVENT_TYPES
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["timestamp"])
    # Ids only: nothing that could sign in, be cracked, or name a person.
    assert not [bad for bad in FORBIDDEN if bad in delivery.body], delivery.body
    assert set(event["data"]) <= DATA_KEYS
    return event


async def events(receiver, count: int, path: str = "/a") -> list[dict]:
    """The next ``count`` events to ``path`` (verified), in no promised order."""
    return [verified(await receiver.next(path)) for _ in range(count)]


def of(found: list[dict], event_type: str) -> dict:
    [match] = [e for e in found if e["type"] == event_type]
    return match


async def call(client, query: str, field: str, bearer: str | None = None, **variables):
    status, body = await client.post(query, variables, token=bearer)
    assert status == 200 and "errors" not in body, body
    return body["data"][field]


async def login(client, email: str, password: str = PASSWORD) -> tuple[str, str]:
    result = await client.login(email, password)
    assert result["status"] == 200, result
    payload = json.loads(result["payload"])
    return payload["access_token"], payload["refresh_token"]


def token_in(sink, message) -> str:
    return parse_qs(urlsplit(sink.link(message)).query)["token"][0]


async def test_every_event_of_an_account_reaches_the_endpoint_signed(
    client, services, receiver, smtp_sink
):
    email = new_email()
    assert (await client.register(email))["status"] == 201
    [registered] = await events(receiver, 1)
    access, refresh = await login(client, email)
    user_id = (await call(client, ME, "me", access))["id"]
    assert registered["type"] == "user.registered"
    assert registered["data"] == {"user_id": user_id}
    assert (await receiver.next("/b")).event == registered  # same event, same id

    # Each of the ways a session ends, with its reason.
    assert await call(client, LOGOUT, "logout", refresh) is True
    [ended] = await events(receiver, 1)
    claims = services.tokens.verify(services.tokens.refresh, refresh)
    assert ended["type"] == "session.revoked"
    assert ended["data"] == {"user_id": user_id, "reason": "logout", "session_id": claims.sid}

    first, _ = await login(client, email)
    await login(client, email)
    assert await call(client, LOGOUT_ALL, "logoutAll", first) is True
    [everywhere] = await events(receiver, 1)
    assert everywhere["data"] == {"user_id": user_id, "reason": "logout_all", "sessions": 2}

    access, _ = await login(client, email)
    other, _ = await login(client, email)
    [other_session] = [s for s in await call(client, SESSIONS, "sessions", other)
                       if s["current"]]  # fmt: skip
    assert await call(client, REVOKE_SESSION, "revokeSession", access, id=other_session["id"])
    [revoked] = await events(receiver, 1)
    assert revoked["data"] == {"user_id": user_id, "reason": "revoke_session",
                               "session_id": other_session["id"]}  # fmt: skip

    _, spent = await login(client, email)
    child = (await call(client, RENEW, "renew", spent))["refreshToken"]
    await call(client, RENEW, "renew", child)
    _, body = await client.post(RENEW, token=spent)  # spent twice over: a reuse
    assert body["data"] is None
    [reuse] = await events(receiver, 1)
    reused_sid = services.tokens.verify(services.tokens.refresh, spent).sid
    assert reuse["data"] == {"user_id": user_id, "reason": "reuse_detected",
                             "session_id": reused_sid}  # fmt: skip

    # A password change: the new password's event and the other sessions' end.
    await login(client, email)
    result = await call(client, CHANGE_PASSWORD, "changePassword", access,
                        current=PASSWORD, new=NEW_PASSWORD)  # fmt: skip
    assert result["status"] == 200, result
    changed = await events(receiver, 2)
    assert of(changed, "password.changed")["data"] == {"user_id": user_id}
    assert of(changed, "session.revoked")["data"] == {
        "user_id": user_id, "reason": "password_changed", "sessions": 1}  # fmt: skip

    # A reset by mail.
    await login(client, email, NEW_PASSWORD)
    await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
    token = token_in(smtp_sink, await smtp_sink.next_mail(email))
    result = await call(client, RESET, "resetPassword", token=token, password=PASSWORD)
    assert result["status"] == 200, result
    reset = await events(receiver, 2)
    assert of(reset, "password.reset")["data"] == {"user_id": user_id}
    assert of(reset, "session.revoked")["data"]["reason"] == "password_reset"
    assert of(reset, "session.revoked")["data"]["sessions"] >= 2

    # A new address, confirmed by its link.
    access, _ = await login(client, email)
    new_address = new_email()
    await call(client, REQUEST_CHANGE, "requestEmailChange", access, email=new_address,
               password=PASSWORD)  # fmt: skip
    token = token_in(smtp_sink, await smtp_sink.next_mail(new_address))
    assert (await call(client, CONFIRM_CHANGE, "confirmEmailChange", token=token))["status"] == 200
    [moved] = await events(receiver, 1)
    assert (moved["type"], moved["data"]) == ("email.changed", {"user_id": user_id})

    # What an operator does (`authsvc users disable | delete`).
    await login(client, new_address)
    await services.accounts.set_disabled(new_address, True)
    disabled = await events(receiver, 2)
    assert of(disabled, "user.disabled")["data"] == {"user_id": user_id}
    assert of(disabled, "session.revoked")["data"] == {
        "user_id": user_id, "reason": "disabled", "sessions": 2}  # fmt: skip
    await services.accounts.set_disabled(new_address, False)  # no event of its own
    await services.accounts.delete_user(new_address)
    [deleted] = await events(receiver, 1)
    assert (deleted["type"], deleted["data"]) == ("user.deleted", {"user_id": user_id})

    everything = receiver.to("/a")
    assert len({d.event["id"] for d in everything}) == len(everything)  # one delivery each
    assert {d.event["type"] for d in everything} == set(EVENT_TYPES) - {
        "user.confirmed", "login.locked"}  # fmt: skip


@pytest.mark.settings(email_confirmation=True)
async def test_a_confirmed_address_is_an_event_and_so_is_an_operators_confirmation(
    client, services, receiver, smtp_sink
):
    email, other = new_email(), new_email()
    assert (await client.register(email))["status"] == 201
    assert (await client.register(other))["status"] == 201
    registered = await events(receiver, 2)  # in the transaction of the token and its mail
    assert [e["type"] for e in registered] == ["user.registered"] * 2
    token = token_in(smtp_sink, await smtp_sink.next_mail(email))
    assert (await call(client, CONFIRM, "confirmEmail", token=token))["status"] == 200
    [confirmed] = await events(receiver, 1)
    access, _ = await login(client, email)
    user_id = (await call(client, ME, "me", access))["id"]
    assert (confirmed["type"], confirmed["data"]) == ("user.confirmed", {"user_id": user_id})

    await services.accounts.confirm_email(other)  # `authsvc users confirm`
    await services.accounts.confirm_email(other)  # confirmed already: nothing happens
    [by_hand] = await events(receiver, 1)
    assert by_hand["type"] == "user.confirmed" and by_hand["data"]["user_id"] != user_id
    assert len(receiver.to("/a")) == 4


@pytest.mark.settings(lockout_consecutive_failures=3, rate_limit_login_per_ip="1000/60",
                      rate_limit_login_failures_per_account="1000/60")  # fmt: skip
async def test_the_failure_that_locks_an_account_is_one_event(client, services, receiver):
    email = new_email()
    await client.register(email)
    await receiver.next("/a")  # registered
    for _ in range(5):  # the third locks it; the fourth and fifth are refused
        result = await client.login(email, "not the password, again")
        assert result["status"] in (401, 429)
    [locked] = await events(receiver, 1)
    assert locked["type"] == "login.locked"
    assert set(locked["data"]) == {"user_id", "locked_for_s"}
    for _ in range(3):
        await client.login(new_email(), "no account at all")  # an unknown email: no event
    await client.login(email)  # refused: still locked
    assert [d.event["type"] for d in receiver.to("/a")] == ["user.registered", "login.locked"]


async def test_a_revocation_is_reported_once_and_only_when_it_ended_something(
    client, services, receiver
):
    """From the outside attack: five racing logoutAll calls sent five session.revoked
    (four of them "sessions": 0; here 20 race), and disabling a disabled account sent user.disabled
    again, each under a new event id, so that receivers could not dedupe them."""
    email = new_email()
    await client.register(email)
    await receiver.next("/a")  # registered
    access, _ = await login(client, email)
    await login(client, email)
    racing = [client.post(LOGOUT_ALL, token=access) for _ in range(20)]
    answers = await asyncio.gather(*racing)
    assert all(status == 200 for status, _ in answers)
    [revoked] = await events(receiver, 1)
    assert revoked["data"]["reason"] == "logout_all" and revoked["data"]["sessions"] == 2
    await services.accounts.set_disabled(email, True)
    [disabled] = await events(receiver, 1)  # no session left to end: no session.revoked
    assert disabled["type"] == "user.disabled"
    await services.accounts.set_disabled(email, True)  # already disabled
    await services.accounts.set_disabled(email, False)
    await client.register(new_email())  # an event after them, so the wait is not blind
    [last] = await events(receiver, 1)
    assert last["type"] == "user.registered"
    assert [d.event["type"] for d in receiver.to("/a")] == [
        "user.registered", "session.revoked", "user.disabled", "user.registered"]  # fmt: skip


ONLY_DELETIONS = json.dumps(
    [{"url": "http://127.0.0.1:9/x", "secrets": SECRETS["/b"], "events": ["user.deleted"]}]
)


@pytest.mark.settings(webhooks=ONLY_DELETIONS)
async def test_an_event_no_endpoint_wants_writes_nothing(client, services):
    email = new_email()
    await client.register(email)
    _, refresh = await login(client, email)
    assert await call(client, LOGOUT, "logout", refresh) is True
    assert await services.outbox.list(100) == []  # no mail either: none was due
    assert not services.events.wants("session.revoked")


@pytest.mark.settings(webhooks=None)
async def test_without_webhooks_there_is_no_loop_and_no_event(client, services):
    assert services.webhook_delivery is None and services.events is NO_EVENTS
    email = new_email()
    await client.register(email)
    _, refresh = await login(client, email)
    assert await call(client, LOGOUT, "logout", refresh) is True
    assert await services.outbox.list(100) == []
