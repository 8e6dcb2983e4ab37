"""Rate limits and lockout through the app: each reached and reset, aliases and batches
counted one by one, client addresses from trusted proxies only."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.helpers import (
    CHANGE_PASSWORD,
    LOGIN,
    PASSWORD,
    REFRESH,
    RENEW,
    SESSIONS,
    error_code,
    new_email,
)


def too_many(result) -> bool:
    return (
        result["status"] == 429
        and result["payload"] is None
        and len(result["errors"]) == 1
        and result["errors"][0]["message"].startswith("too many attempts, retry in ")
    )


async def login_from(client, email, password, address):
    _, body = await client.post(
        LOGIN, {"email": email, "password": password}, headers={"X-Forwarded-For": address}
    )
    return body["data"]["login"]


async def session_count(services, access_token) -> int:
    return len(await services.sessions.list_sessions(access_token))


@pytest.mark.settings(rate_limit_login_failures_per_account="3/1")
async def test_failed_logins_per_account_lock_then_reset(client, services):
    email = new_email()
    access, _ = await client.tokens(email)
    before = await session_count(services, access)
    for _ in range(3):
        assert (await client.login(email, "wrong password"))["status"] == 401
    refused = await client.login(email)  # the right password, refused all the same
    assert too_many(refused) and refused["errors"][0]["path"] == "email"
    assert await session_count(services, access) == before  # nothing was written
    # The same answer for an email with no account: the limit tells nothing either.
    nobody = new_email()
    for _ in range(3):
        await client.login(nobody, "wrong password")
    assert too_many(await client.login(nobody))
    await asyncio.sleep(1.1)  # the window ends
    assert (await client.login(email))["status"] == 200


@pytest.mark.settings(
    rate_limit_login_failures_per_account="off",
    lockout_consecutive_failures=4,
    lockout_window_s=60,
)
async def test_consecutive_failures_lock_and_a_success_resets_them(client):
    email = new_email()
    await client.register(email)
    for _ in range(3):
        await client.login(email, "wrong password")
    assert (await client.login(email))["status"] == 200  # resets the streak
    for _ in range(4):
        assert (await client.login(email, "wrong password"))["status"] == 401
    assert too_many(await client.login(email))


def evaluated(caplog) -> int:
    """Passwords evaluated: every login that got as far as a hash is audited."""
    events = ("login_failed", "login_succeeded")
    return sum(1 for r in caplog.records if getattr(r, "event", None) in events)


@pytest.mark.settings(rate_limit_login_failures_per_account="10/900", bcrypt_rounds=10,
                      rate_limit_login_per_ip="off")  # fmt: skip
async def test_parallel_guesses_evaluate_no_more_passwords_than_the_limit(client, caplog):
    """20 guesses at once against 10/900: 10 are evaluated, 10 refused before any hash,
    and the right password after them is refused. Before, the counter was checked
    before the ~75 ms hash and counted after it, so every guess in flight was
    evaluated. (A success among the guesses would clear the count: tests/core has the
    right password arriving while the guesses are in flight.)"""
    email = new_email()
    await client.register(email)
    caplog.set_level(logging.INFO, logger="authsvc.audit")
    passwords = [f"guess number {i}" for i in range(20)]
    results = await asyncio.gather(*(client.login(email, p) for p in passwords))
    statuses = sorted(r["status"] for r in results)
    assert evaluated(caplog) == 10, statuses
    assert statuses == [401] * 10 + [429] * 10
    assert all(too_many(r) for r in results if r["status"] == 429)
    assert too_many(await client.login(email))


@pytest.mark.settings(rate_limit_login_failures_per_account="3/900", trusted_proxies="127.0.0.1",
                      rate_limit_login_per_ip="off")  # fmt: skip
async def test_one_attackers_address_cannot_lock_the_owner_out(client):
    """The short window counts failures per account and client address."""
    email = new_email()
    await client.register(email)
    for _ in range(3):
        assert (await login_from(client, email, "wrong password", "203.0.113.7"))["status"] == 401
    assert too_many(await login_from(client, email, PASSWORD, "203.0.113.7"))
    # The owner, from another address, logs in; the attacker stays refused.
    assert (await login_from(client, email, PASSWORD, "198.51.100.9"))["status"] == 200
    assert too_many(await login_from(client, email, "another guess", "203.0.113.7"))


@pytest.mark.settings(rate_limit_login_failures_per_account="3/900", trusted_proxies="127.0.0.1",
                      rate_limit_login_per_ip="off", lockout_consecutive_failures=5,
                      lockout_window_s=60)  # fmt: skip
async def test_failures_from_every_address_together_are_bounded_by_the_lockout(client):
    email = new_email()
    await client.register(email)
    for address in ("203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.2"):
        assert (await login_from(client, email, "wrong password", address))["status"] == 401
    # Five in a row from two addresses: the account is refused from any address now.
    refused = await login_from(client, email, PASSWORD, "198.51.100.9")
    assert too_many(refused)
    assert refused["errors"][0]["message"].endswith(("60 seconds", "59 seconds"))


@pytest.mark.settings(rate_limit_login_per_ip="3/60", trusted_proxies="127.0.0.1")
async def test_login_attempts_per_client_address(client):
    email = new_email()
    await client.register(email)
    for _ in range(3):
        assert (await login_from(client, email, PASSWORD, "203.0.113.7"))["status"] == 200
    assert too_many(await login_from(client, email, PASSWORD, "203.0.113.7"))
    # Another client behind the same proxy has its own bucket.
    assert (await login_from(client, email, PASSWORD, "203.0.113.8"))["status"] == 200


@pytest.mark.settings(rate_limit_login_per_ip="3/60")
async def test_forwarded_for_from_an_untrusted_peer_is_ignored(client):
    email = new_email()
    await client.register(email)
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        assert (await login_from(client, email, PASSWORD, address))["status"] == 200
    # Every "address" was really 127.0.0.1: a client cannot pick its own bucket.
    assert too_many(await login_from(client, email, PASSWORD, "198.51.100.4"))


@pytest.mark.settings(rate_limit_register_per_ip="2/60")
async def test_registrations_per_client_address(client):
    emails = [new_email() for _ in range(3)]
    assert (await client.register(emails[0]))["status"] == 201
    assert (await client.register(emails[1]))["status"] == 201
    refused = await client.register(emails[2])
    assert too_many(refused)
    assert (await client.login(emails[2]))["status"] == 401  # no account was created


@pytest.mark.settings(rate_limit_refresh_per_session="3/60")
async def test_refreshes_per_session(client):
    _, refresh = await client.tokens()
    for _ in range(2):
        _, body = await client.post(REFRESH, token=refresh)
        assert body["data"]["refresh"]
    _, body = await client.post(RENEW, token=refresh)  # renewals count too
    refresh = body["data"]["renew"]["refreshToken"]
    _, body = await client.post(REFRESH, token=refresh)
    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert 0 < error["extensions"]["retryAfter"] <= 60
    _, other = await client.tokens()  # another session is not affected
    _, body = await client.post(REFRESH, token=other)
    assert body["data"]["refresh"]


@pytest.mark.settings(rate_limit_password_change_per_account="2/3600")
async def test_password_changes_per_account(client):
    access, _ = await client.tokens()
    wrong = {"current": "not it", "new": "another passphrase"}
    for _ in range(2):
        _, body = await client.post(CHANGE_PASSWORD, wrong, token=access)
        assert body["data"]["changePassword"]["status"] == 401
    _, body = await client.post(
        CHANGE_PASSWORD, {"current": PASSWORD, "new": "another passphrase"}, token=access
    )
    result = body["data"]["changePassword"]
    assert too_many(result) and result["errors"][0]["path"] == "currentPassword"


@pytest.mark.settings(rate_limit_login_failures_per_account="5/60", graphql_max_aliases=50,
                      graphql_max_root_fields=50)  # fmt: skip
async def test_every_aliased_login_is_an_attempt(client):
    email = new_email()
    await client.register(email)
    fields = " ".join(
        f'a{i}: login(email: "{email}", password: "guess-{i}") {{ status }}' for i in range(20)
    )
    _, body = await client.post(f"mutation {{ {fields} }}")
    statuses = [body["data"][f"a{i}"]["status"] for i in range(20)]
    assert statuses == [401] * 5 + [429] * 15


@pytest.mark.settings(graphql_batch_max=3, rate_limit_login_per_ip="2/60")
async def test_batches_are_capped_and_every_operation_counts(client):
    email = new_email()
    await client.register(email)
    one = {"query": LOGIN, "variables": {"email": email, "password": PASSWORD}}
    response = await client.raw(body=json.dumps([one, one, one]))
    assert response.code == 200
    results = [item["data"]["login"] for item in json.loads(response.body)]
    assert [r["status"] for r in results] == [200, 200, 429]
    response = await client.raw(body=json.dumps([one] * 4))
    assert response.code == 400
    assert json.loads(response.body)["errors"][0]["message"] == "A batch holds 1 to 3 operations"


@pytest.mark.settings(trusted_proxies="127.0.0.0/8")
async def test_sessions_record_the_client_behind_a_trusted_proxy(client):
    email = new_email()
    await client.register(email)
    result = await login_from(client, email, PASSWORD, "192.0.2.1, 203.0.113.9, 127.0.0.2")
    access = json.loads(result["payload"])["access_token"]
    _, body = await client.post(SESSIONS, token=access)
    # The rightmost address that is not one of our proxies: what the client wrote at
    # the left end (192.0.2.1) is ignored.
    assert body["data"]["sessions"][0]["ip"] == "203.0.113.9"
    assert error_code(body) is None


@pytest.mark.settings(bcrypt_rounds=12, hash_threads=1, hash_queue_max=1,
                      rate_limit_login_per_ip="off")  # fmt: skip
async def test_logins_past_the_hashing_backlog_are_answered_busy_at_once(client):
    email = new_email()
    await client.register(email)  # the only hash in flight now: finished
    results = await asyncio.gather(*(client.login(email) for _ in range(4)))
    statuses = sorted(r["status"] for r in results)
    assert statuses[0] == 200 and 503 in statuses
    busy = next(r for r in results if r["status"] == 503)
    assert busy["errors"] == [{"path": "email", "message": "the server is busy, retry later"}]


@pytest.mark.settings(bcrypt_rounds=12, hash_threads=1, hash_queue_max_wait_s=0.1,
                      rate_limit_login_per_ip="off")  # fmt: skip
async def test_logins_past_the_wait_bound_are_answered_busy_at_once(client):
    """HASH_QUEUE_MAX_WAIT_S reaches the hasher: one hash at 12 rounds (about 0.25 s)
    is more than 0.1 s of waiting, so beside one login in flight the others are busy."""
    email = new_email()
    await client.register(email)
    variables = {"email": email, "password": PASSWORD}
    answers = await asyncio.gather(
        *(answer_with_headers(client, LOGIN, variables) for _ in range(4))
    )
    statuses = sorted(body["data"]["login"]["status"] for _, body in answers)
    assert statuses == [200, 503, 503, 503]
    for headers, body in answers:
        if body["data"]["login"]["status"] == 503:
            assert headers["Retry-After"] == "1"  # one hash ahead: under a second


@pytest.mark.settings(bcrypt_rounds=12, hash_threads=1, hash_queue_max=1,
                      rate_limit_login_per_ip="2/60")  # fmt: skip
async def test_busy_answers_are_not_counted_against_the_client(client):
    """Shedding load comes first: a login refused as busy asked no store and counted no
    attempt, so a client that retries later is not locked out by the server's load."""
    email = new_email()
    await client.register(email)
    results = await asyncio.gather(*(client.login(email) for _ in range(6)))
    statuses = sorted(r["status"] for r in results)
    assert statuses == [200, 503, 503, 503, 503, 503]
    assert (await client.login(email))["status"] == 200  # the 2nd counted attempt
    assert (await client.login(email))["status"] == 429  # the 3rd: over 2 a minute


async def answer_with_headers(client, query, variables=None, token=None):
    response = await client.answer(query, variables, token)
    return response.headers, json.loads(response.body)


@pytest.mark.settings(rate_limit_login_per_ip="1/60", rate_limit_refresh_per_session="1/60")
async def test_refusals_that_pass_say_when_to_retry_in_retry_after(client):
    email = new_email()
    _, refresh = await client.tokens(email)  # the one login this address may make
    variables = {"email": email, "password": PASSWORD}
    headers, body = await answer_with_headers(client, LOGIN, variables)
    assert body["data"]["login"]["status"] == 429
    assert 50 <= int(headers["Retry-After"]) <= 60  # the window's end
    # A rate limit raised as a GraphQL error (refresh) sets it too; a success does not.
    headers, body = await answer_with_headers(client, REFRESH, token=refresh)
    assert body["data"]["refresh"] and "Retry-After" not in headers
    headers, body = await answer_with_headers(client, REFRESH, token=refresh)
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert headers["Retry-After"] == str(body["errors"][0]["extensions"]["retryAfter"])


@pytest.mark.settings(bcrypt_rounds=12, hash_threads=1, hash_queue_max=1,
                      rate_limit_login_per_ip="off")  # fmt: skip
async def test_busy_says_when_the_backlog_has_room(client):
    email = new_email()
    await client.register(email)
    variables = {"email": email, "password": PASSWORD}
    answers = await asyncio.gather(
        *(answer_with_headers(client, LOGIN, variables) for _ in range(3))
    )
    busy = [(h, b) for h, b in answers if b["data"]["login"]["status"] == 503]
    assert busy
    for headers, _ in busy:
        # One hash (about 0.25 s at 12 rounds) ahead of it: the minimum, one second.
        assert headers["Retry-After"] == "1"
