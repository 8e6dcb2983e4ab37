"""The account flows by email, through the API over HTTP, on MariaDB + Redis and on the
embedded default, with real mail: the service's outbox delivers to the test's SMTP
sink, and the tests read the mail and use its link's token (issue 13).

Also the attacks on them: spent, expired, forged, oversized and wrong-purpose tokens;
two requests racing with one token or for one address; answers and timing that must
not tell which addresses have accounts."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from authsvc.services import open_services
from tests.conftest import settings_for
from tests.helpers import LOGIN, PASSWORD, REFRESH, error_code, new_email, unauthorized

NEW_PASSWORD = "a fresh passphrase 42"
PUBLIC_URL = "https://auth.example.test"

REQUEST_CONFIRMATION = """mutation($email: String!) {
  requestEmailConfirmation(email: $email) { status errors { path message } payload }
}"""
CONFIRM = """mutation($token: String!) {
  confirmEmail(token: $token) { status errors { path message } payload }
}"""
REQUEST_RESET = """mutation($email: String!) {
  requestPasswordReset(email: $email) { status errors { path message } payload }
}"""
RESET = """mutation($token: String!, $password: String!) {
  resetPassword(token: $token, newPassword: $password) { status errors { path message } payload }
}"""
REQUEST_CHANGE = """mutation($email: String!, $password: String!) {
  requestEmailChange(newEmail: $email, currentPassword: $password) {
    status errors { path message } payload
  }
}"""
CONFIRM_CHANGE = """mutation($token: String!) {
  confirmEmailChange(token: $token) { status errors { path message } payload }
}"""
INVALID_TOKEN = [{"path": "token", "message": "invalid or expired link"}]


@pytest.fixture
def settings(request, backend, mysql_server, redis_server, tmp_path, smtp_sink):
    marker = request.node.get_closest_marker("settings")
    overrides = {
        "smtp_url": smtp_sink.url,
        "public_url": PUBLIC_URL,
        "email_from": "authsvc <no-reply@example.test>",
        "outbox_poll_interval_s": 0.2,
        "outbox_backoff_base_s": 0.2,
        "email_request_answer_s": 0.05,
        "email_resend_cooldown_s": 0,
        "rate_limit_email_per_ip": "10000/60",
        "rate_limit_register_per_ip": "10000/60",
        "rate_limit_login_per_ip": "10000/60",
    } | (marker.kwargs if marker else {})
    return settings_for(backend, mysql_server, redis_server, tmp_path, **overrides)


@pytest.fixture
def services(io_loop, settings):
    opened = io_loop.run_sync(lambda: open_services(settings))

    async def start() -> None:  # on the test's loop, which then runs it
        opened.start_delivery()

    io_loop.run_sync(start)
    yield opened
    io_loop.run_sync(opened.close)


def answer(body: dict, field: str) -> dict:
    assert "errors" not in body, body
    return body["data"][field]


def token_of(sink, message) -> tuple[str, str]:
    """(the link's path, its token)."""
    link = urlsplit(sink.link(message))
    assert f"{link.scheme}://{link.netloc}" == PUBLIC_URL
    return link.path, parse_qs(link.query)["token"][0]


async def mail_token(sink, address: str, path: str) -> str:
    found_path, token = token_of(sink, await sink.next_mail(address))
    assert found_path == path
    return token


async def call(client, query: str, field: str, bearer: str | None = None, **variables) -> dict:
    status, body = await client.post(query, variables, token=bearer)
    assert status == 200, body
    return answer(body, field)


async def logged_in(client, email: str, password: str = PASSWORD) -> tuple[str, str]:
    result = await client.login(email, password)
    assert result["status"] == 200, result
    payload = json.loads(result["payload"])
    return payload["access_token"], payload["refresh_token"]


# --- confirmation ----------------------------------------------------------------------


@pytest.mark.settings(email_confirmation=True)
async def test_register_mails_a_confirmation_that_lets_the_account_log_in(client, smtp_sink):
    email = new_email()
    assert (await client.register(email))["status"] == 201
    token = await mail_token(smtp_sink, email, "/confirm-email")
    refused = await client.login(email)
    assert refused["errors"] == [{"path": "email", "message": "not confirmed"}]
    wrong = await client.login(email, "not the password at all")  # tells nothing more
    assert wrong["errors"] == [{"path": "email", "message": "invalid login"}]
    confirmed = await call(client, CONFIRM, "confirmEmail", token=token)
    assert confirmed["status"] == 200 and json.loads(confirmed["payload"])["confirmed"] is True
    assert (await client.login(email))["status"] == 200
    again = await call(client, CONFIRM, "confirmEmail", token=token)
    assert (again["status"], again["errors"]) == (401, INVALID_TOKEN)


@pytest.mark.settings(email_confirmation=True)
async def test_a_confirmation_resent_answers_the_same_for_every_address(client, smtp_sink):
    confirmed, unconfirmed, unknown = new_email(), new_email(), new_email()
    for email in (confirmed, unconfirmed):
        await client.register(email)
    first = await mail_token(smtp_sink, confirmed, "/confirm-email")
    await call(client, CONFIRM, "confirmEmail", **{"token": first})
    await mail_token(smtp_sink, unconfirmed, "/confirm-email")  # register's own mail
    answers = [
        await call(client, REQUEST_CONFIRMATION, "requestEmailConfirmation", email=email)
        for email in (unknown, confirmed, unconfirmed)  # the one that gets mail last
    ]
    assert answers == [{"status": 200, "errors": [], "payload": None}] * 3
    resent = await mail_token(smtp_sink, unconfirmed, "/confirm-email")
    # Mail goes out in the order it was recorded: nothing was recorded for the others.
    assert smtp_sink.mails_to(unknown) == [] and len(smtp_sink.mails_to(confirmed)) == 1
    confirmed_now = await call(client, CONFIRM, "confirmEmail", **{"token": resent})
    assert confirmed_now["status"] == 200


# --- password reset --------------------------------------------------------------------


async def test_a_reset_sets_the_password_and_ends_every_session(client, smtp_sink):
    email = new_email()
    await client.register(email)
    _, refresh = await logged_in(client, email)  # the attacker's session, say
    result = await call(client, REQUEST_RESET, "requestPasswordReset", email=email.upper())
    assert result == {"status": 200, "errors": [], "payload": None}
    token = await mail_token(smtp_sink, email, "/reset-password")
    _, body = await client.post(RESET, {"token": token, "password": NEW_PASSWORD})
    reset = body["data"]["resetPassword"]
    assert reset == {"status": 200, "errors": [], "payload": None}
    _, body = await client.post(REFRESH, token=refresh)
    assert unauthorized(body, "refresh")
    old = await client.login(email)
    assert old["errors"] == [{"path": "email", "message": "invalid login"}]
    await logged_in(client, email, NEW_PASSWORD)
    notice = await smtp_sink.next_mail(email)
    assert "password" in notice["Subject"].lower() and "token=" not in smtp_sink.text(notice)
    _, body = await client.post(RESET, {"token": token, "password": "yet another one 77"})
    spent = body["data"]["resetPassword"]
    assert (spent["status"], spent["errors"]) == (401, INVALID_TOKEN)


async def test_an_unknown_address_gets_the_same_answer_and_no_mail(client, smtp_sink):
    unknown, known = new_email(), new_email()
    await client.register(known)
    for email in (unknown, known):
        result = await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
        assert result == {"status": 200, "errors": [], "payload": None}
    await smtp_sink.next_mail(known)  # recorded after the unknown one's would have been
    assert smtp_sink.mails_to(unknown) == []


async def test_older_reset_links_work_until_a_reset_succeeds(client, smtp_sink):
    email = new_email()
    await client.register(email)
    tokens = []
    for _ in range(2):
        await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
        tokens.append(await mail_token(smtp_sink, email, "/reset-password"))
    _, body = await client.post(RESET, {"token": tokens[0], "password": NEW_PASSWORD})
    assert body["data"]["resetPassword"]["status"] == 200  # the older one still worked
    _, body = await client.post(RESET, {"token": tokens[1], "password": "another passphrase 9"})
    assert body["data"]["resetPassword"]["errors"] == INVALID_TOKEN  # then all of them end


async def test_two_resets_racing_with_one_token_have_one_winner(client, smtp_sink):
    email = new_email()
    await client.register(email)
    await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
    token = await mail_token(smtp_sink, email, "/reset-password")
    passwords = [f"racing passphrase {n}" for n in range(20)]
    answers = await asyncio.gather(
        *(client.post(RESET, {"token": token, "password": p}) for p in passwords)
    )
    results = [body["data"]["resetPassword"] for _, body in answers]
    winners = [p for p, r in zip(passwords, results, strict=True) if r["status"] == 200]
    assert len(winners) == 1, results
    assert all(r["errors"] == INVALID_TOKEN for r in results if r["status"] != 200)
    await logged_in(client, email, winners[0])  # the winner's password is the one set


async def test_a_password_the_rules_refuse_leaves_the_token_good(client, smtp_sink):
    email = new_email()
    await client.register(email)
    await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
    token = await mail_token(smtp_sink, email, "/reset-password")
    _, body = await client.post(RESET, {"token": token, "password": "short"})
    refused = body["data"]["resetPassword"]
    assert refused["status"] == 401 and refused["errors"][0]["path"] == "newPassword"
    _, body = await client.post(RESET, {"token": token, "password": NEW_PASSWORD})
    assert body["data"]["resetPassword"]["status"] == 200


@pytest.mark.parametrize(
    "forged",
    ["", "x", "A" * 43, "A" * 10_000, "../../etc/passwd", "' OR 1=1 --", "\u0000\ud800"],
)
async def test_a_forged_token_changes_nothing(client, forged):
    for query, field, variables in (
        (CONFIRM, "confirmEmail", {"token": forged}),
        (RESET, "resetPassword", {"token": forged, "password": NEW_PASSWORD}),
        (CONFIRM_CHANGE, "confirmEmailChange", {"token": forged}),
    ):
        status, body = await client.post(query, variables)
        if status == 400:  # a string GraphQL itself refuses (a lone surrogate)
            continue
        result = body["data"][field]
        assert (result["status"], result["errors"]) == (401, INVALID_TOKEN)


async def test_a_token_of_another_purpose_is_refused(client, smtp_sink):
    email = new_email()
    await client.register(email)
    await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
    token = await mail_token(smtp_sink, email, "/reset-password")
    for query, field in ((CONFIRM, "confirmEmail"), (CONFIRM_CHANGE, "confirmEmailChange")):
        result = await call(client, query, field, token=token)
        assert result["errors"] == INVALID_TOKEN
    _, body = await client.post(RESET, {"token": token, "password": NEW_PASSWORD})
    assert body["data"]["resetPassword"]["status"] == 200  # and still good for its own


@pytest.mark.settings(rate_limit_email_per_address="2/3600")
async def test_requests_per_address_are_limited_alike_for_every_address(client, smtp_sink):
    known, unknown = new_email(), new_email()
    await client.register(known)
    for email in (known, unknown):
        statuses = [
            (await call(client, REQUEST_RESET, "requestPasswordReset", email=email))["status"]
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429], email


@pytest.mark.settings(email_resend_cooldown_s=3600)
async def test_the_resend_cooldown_answers_the_same_and_sends_nothing(client, smtp_sink):
    email = new_email()
    await client.register(email)
    for _ in range(3):
        result = await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
        assert result == {"status": 200, "errors": [], "payload": None}
    await smtp_sink.next_mail(email)
    other = new_email()
    await client.register(other)
    await call(client, REQUEST_RESET, "requestPasswordReset", email=other)
    await smtp_sink.next_mail(other)  # recorded after any second mail to the first
    assert len(smtp_sink.mails_to(email)) == 1


@pytest.mark.settings(email_request_answer_s=0.15)
async def test_reset_requests_take_the_same_time_for_known_and_unknown_addresses(client):
    """Medians over many calls, alternated: the floor hides the lookup, the token row
    and the mail a known address costs."""
    known = [new_email() for _ in range(15)]
    for email in known:
        await client.register(email)
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for email in known:
        for kind, address in (("known", email), ("unknown", new_email())):
            started = time.perf_counter()
            await call(client, REQUEST_RESET, "requestPasswordReset", email=address)
            times[kind].append(time.perf_counter() - started)
    known_s, unknown_s = (statistics.median(times[k]) for k in ("known", "unknown"))
    assert min(known_s, unknown_s) >= 0.15
    assert abs(known_s - unknown_s) < 0.02, times


# --- email change ----------------------------------------------------------------------


async def test_an_email_change_confirmed_by_the_new_address(client, smtp_sink):
    old, new = new_email(), new_email()
    await client.register(old)
    access, _ = await logged_in(client, old)
    result = await call(client, REQUEST_CHANGE, "requestEmailChange", access,
                        email=new, password=PASSWORD)  # fmt: skip
    assert result == {"status": 200, "errors": [], "payload": None}
    notice = await smtp_sink.next_mail(old)
    assert new in smtp_sink.text(notice) and "token=" not in smtp_sink.text(notice)
    token = await mail_token(smtp_sink, new, "/confirm-email-change")
    changed = await call(client, CONFIRM_CHANGE, "confirmEmailChange", token=token)
    assert changed["status"] == 200 and json.loads(changed["payload"])["email"] == new
    await logged_in(client, new)
    assert (await client.login(old))["errors"] == [{"path": "email", "message": "invalid login"}]
    done = await smtp_sink.next_mail(old)  # the old address is told it happened
    assert new in smtp_sink.text(done)
    again = await call(client, CONFIRM_CHANGE, "confirmEmailChange", token=token)
    assert again["errors"] == INVALID_TOKEN


async def test_two_accounts_racing_for_one_address_have_one_winner(client, smtp_sink):
    first, second, wanted = new_email(), new_email(), new_email()
    tokens = []
    for email in (first, second):
        await client.register(email)
        access, _ = await logged_in(client, email)
        await call(client, REQUEST_CHANGE, "requestEmailChange", access,
                   email=wanted, password=PASSWORD)  # fmt: skip
        tokens.append(await mail_token(smtp_sink, wanted, "/confirm-email-change"))
    answers = await asyncio.gather(
        *(client.post(CONFIRM_CHANGE, {"token": token}) for token in tokens)
    )
    results = [body["data"]["confirmEmailChange"] for _, body in answers]
    assert sorted(r["status"] for r in results) == [200, 401], results
    loser = next(r for r in results if r["status"] == 401)
    assert loser["errors"] == [{"path": "newEmail", "message": "already taken"}]
    await logged_in(client, wanted)


async def test_an_address_already_taken_gets_the_same_answer_and_no_mail(client, smtp_sink):
    mine, theirs = new_email(), new_email()
    for email in (mine, theirs):
        await client.register(email)
    access, _ = await logged_in(client, mine)
    result = await call(client, REQUEST_CHANGE, "requestEmailChange", access,
                        email=theirs, password=PASSWORD)  # fmt: skip
    assert result == {"status": 200, "errors": [], "payload": None}
    await smtp_sink.next_mail(mine)  # the notice, recorded in the same transaction
    assert smtp_sink.mails_to(theirs) == []


async def test_an_email_change_needs_the_password_and_a_token(client, smtp_sink):
    email = new_email()
    await client.register(email)
    access, _ = await logged_in(client, email)
    result = await call(client, REQUEST_CHANGE, "requestEmailChange", access,
                        email=new_email(), password="not my password")  # fmt: skip
    assert result["errors"] == [{"path": "currentPassword", "message": "invalid password"}]
    _, body = await client.post(REQUEST_CHANGE, {"email": new_email(), "password": PASSWORD})
    assert error_code(body) == "UNAUTHENTICATED"


# --- no mail can be sent ---------------------------------------------------------------


@pytest.mark.parametrize("backend", ["servers"])  # production runs on MariaDB + Redis
@pytest.mark.settings(smtp_url=None, node_env="production")
async def test_without_mail_the_requests_say_so(client):
    email = new_email()
    await client.register(email)
    for query, field in ((REQUEST_RESET, "requestPasswordReset"),
                         (REQUEST_CONFIRMATION, "requestEmailConfirmation")):  # fmt: skip
        _, body = await client.post(query, {"email": email})
        assert error_code(body) == "EMAIL_DISABLED", body
        assert body["data"] is None or body["data"][field] is None
    _, body = await client.post(LOGIN, {"email": email, "password": PASSWORD})
    assert body["data"]["login"]["status"] == 200


# --- the mail server misbehaves --------------------------------------------------------


async def test_a_stalled_or_refusing_mail_server_never_slows_a_request(client, smtp_sink):
    """The request records the mail and answers; delivery waits for the server."""
    email = new_email()
    await client.register(email)
    smtp_sink.stall.set()  # every RCPT hangs
    try:
        started = time.perf_counter()
        result = await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
        assert result["status"] == 200
        assert time.perf_counter() - started < 1.0
    finally:
        smtp_sink.stall.clear()
    await mail_token(smtp_sink, email, "/reset-password")  # it goes out once it can
    smtp_sink.refuse("RCPT", "451 4.3.0 try again later", "451 4.3.0 still not")
    await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
    token = await mail_token(smtp_sink, email, "/reset-password")  # after two 4xx
    _, body = await client.post(RESET, {"token": token, "password": NEW_PASSWORD})
    assert body["data"]["resetPassword"]["status"] == 200


@pytest.mark.settings(email_confirmation=True)
async def test_a_disabled_account_is_not_confirmed_by_its_link(client, services, smtp_sink):
    email = new_email()
    await client.register(email)
    token = await mail_token(smtp_sink, email, "/confirm-email")
    await services.accounts.set_disabled(email, True)
    result = await call(client, CONFIRM, "confirmEmail", token=token)
    assert result["errors"] == INVALID_TOKEN
    assert not (await services.accounts.find(email)).confirmed


async def test_mail_to_an_international_domain_goes_to_that_domain(client, smtp_sink):
    """IDNA 2008, as the address was normalized: Python's "idna" codec (IDNA 2003) made
    straße.de strasse.de, another domain, whose owner got the reset links."""
    email = f"bob-{new_email().split('@')[0]}@straße.de"
    await client.register(email)
    await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
    ascii_address = email.replace("straße.de", "xn--strae-oqa.de")
    message = await smtp_sink.next_mail(ascii_address)
    assert message["To"] == ascii_address
    assert not [c for c in smtp_sink.captured if any("strasse" in r for r in c.recipients)]


async def test_a_mail_that_cannot_be_sent_holds_up_no_other(client, services, smtp_sink):
    """A local part that is not ASCII needs SMTPUTF8: its mail is dead at once, and the
    mails claimed with it go out (aiosmtplib's UnicodeEncodeError escaped the delivery
    loop, and kept the whole batch claimed and retried for ever)."""
    poisoned = [f"ü{n}-{new_email()}" for n in range(3)]
    plain = new_email()
    for email in (*poisoned, plain):
        await client.register(email)
        await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
    await mail_token(smtp_sink, plain, "/reset-password")
    for _ in range(50):
        dead = [e for e in await services.outbox.list(100, state="dead") if "ü" in e.recipient]
        if len(dead) == len(poisoned):
            break
        await asyncio.sleep(0.1)
    assert len(dead) == len(poisoned) and all(e.attempts == 1 for e in dead), dead


@pytest.mark.settings(rate_limit_email_per_address="2/3600")
async def test_accounts_cannot_take_turns_to_flood_one_mailbox(client, smtp_sink):
    """Mail to an address is limited per address, whichever account asks for it."""
    victim = new_email()
    statuses = []
    for _ in range(3):
        email = new_email()
        await client.register(email)
        access, _ = await logged_in(client, email)
        result = await call(client, REQUEST_CHANGE, "requestEmailChange", access,
                            email=victim, password=PASSWORD)  # fmt: skip
        statuses.append(result["status"])
        if result["status"] == 200:
            await smtp_sink.next_mail(email)  # the notice to the requester's own address
    assert statuses == [200, 200, 429]
    assert len(smtp_sink.mails_to(victim)) <= 2


@pytest.mark.settings(email_resend_cooldown_s=3600)
async def test_the_cooldown_holds_for_an_email_change_link_too(client, smtp_sink):
    victim = new_email()
    for _ in range(2):
        email = new_email()
        await client.register(email)
        access, _ = await logged_in(client, email)
        result = await call(client, REQUEST_CHANGE, "requestEmailChange", access,
                            email=victim, password=PASSWORD)  # fmt: skip
        assert result["status"] == 200
        await smtp_sink.next_mail(email)
    await asyncio.sleep(0.5)  # the second would have been recorded with its notice
    assert len(smtp_sink.mails_to(victim)) == 1


@pytest.mark.settings(email_request_answer_s=0.1)
async def test_an_email_change_takes_the_same_time_for_taken_and_free_addresses(client):
    taken = [new_email() for _ in range(12)]
    for email in taken:
        await client.register(email)
    mine = new_email()
    await client.register(mine)
    access, _ = await logged_in(client, mine)
    times: dict[str, list[float]] = {"taken": [], "free": []}
    for address in taken:
        for kind, target in (("taken", address), ("free", new_email())):
            started = time.perf_counter()
            await call(client, REQUEST_CHANGE, "requestEmailChange", access,
                       email=target, password=PASSWORD)  # fmt: skip
            times[kind].append(time.perf_counter() - started)
    taken_s, free_s = (statistics.median(times[k]) for k in ("taken", "free"))
    assert abs(taken_s - free_s) < 0.02, times


async def test_disabling_an_account_ends_its_links(client, services, smtp_sink):
    """A link must not outlive a disable, to work again once the account is enabled."""
    email = new_email()
    await client.register(email)
    await call(client, REQUEST_RESET, "requestPasswordReset", email=email)
    token = await mail_token(smtp_sink, email, "/reset-password")
    await services.accounts.set_disabled(email, True)
    await services.accounts.set_disabled(email, False)
    _, body = await client.post(RESET, {"token": token, "password": NEW_PASSWORD})
    assert body["data"]["resetPassword"]["errors"] == INVALID_TOKEN


@pytest.mark.settings(rate_limit_email_per_address="2/3600", email_resend_cooldown_s=3600)
async def test_email_changes_aimed_at_an_address_leave_its_own_requests_alone(client, smtp_sink):
    """Strangers' accounts spending the limit (and cooldown) of mail to an address must
    not refuse or silence that address's own reset."""
    victim = new_email()
    await client.register(victim)
    for _ in range(3):
        email = new_email()
        await client.register(email)
        access, _ = await logged_in(client, email)
        await call(client, REQUEST_CHANGE, "requestEmailChange", access,
                   email=victim, password=PASSWORD)  # fmt: skip
    result = await call(client, REQUEST_RESET, "requestPasswordReset", email=victim)
    assert result["status"] == 200
    await mail_token(smtp_sink, victim, "/reset-password")


@pytest.mark.settings(email_confirmation=True, rate_limit_login_failures_per_account="3/900")
async def test_an_unconfirmed_account_is_locked_like_any_other(client):
    """Wrong passwords count against an unconfirmed account as against any: guessing
    its password is no faster."""
    email = new_email()
    await client.register(email)
    answers = [(await client.login(email, f"wrong guess {n}"))["status"] for n in range(4)]
    assert answers == [401, 401, 401, 429]
