"""The account flows' tokens against the real stores, with a clock the test moves:
expiry, what is stored of a token, a link sent to an address the account no longer has,
and the pruning of expired rows (issue 13). The flows themselves are tested through
the API (tests/graphql/test_lifecycle.py)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from authsvc.core.clock import utc_now
from authsvc.core.errors import InvalidInput
from authsvc.services import open_services
from authsvc.stores.account_tokens import token_hash
from authsvc.stores.base import StoreUnavailable
from tests.conftest import settings_for
from tests.e2e.processes import ThrowawayRedis
from tests.helpers import PASSWORD, new_email

NEW_PASSWORD = "a fresh passphrase 42"


class MovableClock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock():
    return MovableClock()


@pytest.fixture
def lifecycle_services(io_loop, backend, mysql_server, redis_server, tmp_path, smtp_sink, clock):
    settings = settings_for(
        backend, mysql_server, redis_server, tmp_path,
        smtp_url=smtp_sink.url, public_url="https://auth.example.test",
        email_request_answer_s=0, email_resend_cooldown_s=0,
        password_reset_ttl_s=600, email_confirmation_ttl_s=600, email_change_ttl_s=600,
    )  # fmt: skip
    services = io_loop.run_sync(lambda: open_services(settings, clock=clock))

    async def start() -> None:
        services.start_delivery()

    io_loop.run_sync(start)
    yield services
    io_loop.run_sync(services.close)


def token_in(sink, message) -> str:
    return parse_qs(urlsplit(sink.link(message)).query)["token"][0]


async def reset_token(services, sink, email: str) -> str:
    await services.lifecycle.request_password_reset(email, "127.0.0.1")
    return token_in(sink, await sink.next_mail(email))


async def stored_tokens(services) -> list[tuple]:
    async with services.users_db.transaction() as tx:
        return list(await tx.fetchall("SELECT token_hash, purpose, email FROM account_tokens"))


async def test_an_expired_token_changes_nothing(lifecycle_services, smtp_sink, clock):
    services = lifecycle_services
    email = new_email()
    user = await services.accounts.register(email, PASSWORD, "127.0.0.1")
    token = await reset_token(services, smtp_sink, email)
    clock.advance(601)
    with pytest.raises(InvalidInput) as refused:
        await services.lifecycle.reset_password(token, NEW_PASSWORD, "127.0.0.1")
    assert refused.value.errors[0].path == "token"
    stored = await services.sessions._users.get(user.id)
    assert stored is not None and stored.password_hash == user.password_hash
    # Pruned once past its end, by the next token issued (and nothing else is)…
    fresh = await reset_token(services, smtp_sink, email)
    hashes = [row[0] for row in await stored_tokens(services)]
    assert token_hash(token) not in hashes and token_hash(fresh) in hashes
    # … or by the pruning itself.
    clock.advance(601)
    assert await services.lifecycle.delete_expired() >= 1
    assert token_hash(fresh) not in [row[0] for row in await stored_tokens(services)]


async def test_only_a_hash_of_the_token_is_stored(lifecycle_services, smtp_sink):
    services = lifecycle_services
    email = new_email()
    await services.accounts.register(email, PASSWORD, "127.0.0.1")
    token = await reset_token(services, smtp_sink, email)
    rows = await stored_tokens(services)
    assert (token_hash(token), "reset_password", email) in [tuple(r) for r in rows]
    assert all(token not in str(value) for row in rows for value in row)
    assert len(token) >= 43  # 256 bits, URL-safe base64


async def test_a_reset_link_sent_to_an_address_the_account_left_is_refused(
    lifecycle_services, smtp_sink
):
    services = lifecycle_services
    old, new = new_email(), new_email()
    user = await services.accounts.register(old, PASSWORD, "127.0.0.1")
    token = await reset_token(services, smtp_sink, old)  # the old mailbox has it
    await services.lifecycle.request_email_change(user, new, PASSWORD)
    await smtp_sink.next_mail(old)  # the notice
    change = token_in(smtp_sink, await smtp_sink.next_mail(new))
    await services.lifecycle.confirm_email_change(change)
    with pytest.raises(InvalidInput):
        await services.lifecycle.reset_password(token, NEW_PASSWORD, "127.0.0.1")


async def test_a_reset_while_redis_is_down_changes_nothing(
    io_loop, mysql_server, redis_server, tmp_path, smtp_sink
):
    """Ending the sessions is part of the reset: with Redis down it is refused before
    the password changes and the token is spent, and the same link works once Redis is
    back (a new password beside the old sessions would leave an attacker in)."""
    redis = ThrowawayRedis(tmp_path)
    redis.start()
    settings = settings_for(
        "servers", mysql_server, redis_server, tmp_path,
        redis_url=redis.url, smtp_url=smtp_sink.url, public_url="https://auth.example.test",
        email_request_answer_s=0, store_timeout_s=1.0,
    )  # fmt: skip
    services = await open_services(settings)
    services.start_delivery()
    try:
        email = new_email()
        user = await services.accounts.register(email, PASSWORD, "127.0.0.1")
        token = await reset_token(services, smtp_sink, email)
        redis.stop()
        with pytest.raises(StoreUnavailable):
            await services.lifecycle.reset_password(token, NEW_PASSWORD, "127.0.0.1")
        stored = await services.accounts.find(email)
        assert stored.password_hash == user.password_hash
        redis.start()
        await services.lifecycle.reset_password(token, NEW_PASSWORD, "127.0.0.1")
        assert (await services.accounts.find(email)).password_hash != user.password_hash
    finally:
        redis.stop()
        await services.close()
