"""Emails that look the same are one account: NFC and NFD, a domain in Unicode and in
punycode, any case (one rule, core.validation.normalize_email, at every entry)."""

from __future__ import annotations

import asyncio
import json
import unicodedata
import uuid

import pytest

from tests.helpers import ME, PASSWORD, REGISTER

TAKEN = [{"path": "email", "message": "already taken"}]


def spellings() -> list[tuple[str, str]]:
    """Pairs (first, second) of one address written two ways, fresh for each test."""
    tag = uuid.uuid4().hex[:8]
    nfc = f"jos\u00e9-{tag}@example.com"
    return [
        (nfc, unicodedata.normalize("NFD", nfc)),
        (f"hans-{tag}@b\u00fccher.de", f"hans-{tag}@xn--bcher-kva.de"),
        (f"hans-{tag}@xn--bcher-kva.de".upper(), f"Hans-{tag}@B\u00dcCHER.de"),
    ]


@pytest.mark.parametrize("pair", range(3))
async def test_a_second_spelling_is_already_taken_and_either_logs_in(client, pair):
    first, second = spellings()[pair]
    assert first != second
    assert (await client.register(first))["status"] == 201
    assert await client.register(second) == {"status": 401, "errors": TAKEN, "payload": None}
    emails = set()
    for spelling in (first, second):
        login = await client.login(spelling)
        assert login["status"] == 200, login
        access = json.loads(login["payload"])["access_token"]
        _, body = await client.post(ME, token=access)
        emails.add(body["data"]["me"]["email"])
    (stored,) = emails  # one account, its email in the one stored form
    assert stored == unicodedata.normalize("NFC", stored) and "xn--" not in stored
    assert stored == stored.lower()


async def test_racing_registrations_of_two_spellings_make_one_account(client):
    nfc, nfd = spellings()[0]
    answers = await asyncio.gather(
        *(client.post(REGISTER, {"email": email, "password": PASSWORD}) for email in [nfc, nfd] * 8)
    )
    results = [body["data"]["register"] for _, body in answers]
    assert sum(r["status"] == 201 for r in results) == 1
    assert all(r["errors"] == TAKEN for r in results if r["status"] != 201)


async def test_an_oversized_email_is_refused_with_the_node_message(client):
    invalid = [{"path": "email", "message": "email must be a valid email"}]
    for email in ("a" * 64 + "@" + "b" * 2000 + ".com", "é" * 3000 + "@example.com"):
        result = await client.register(email)
        assert result["status"] == 401 and result["errors"] == invalid


@pytest.mark.settings(rate_limit_login_failures_per_account="3/900")
async def test_spellings_share_the_accounts_failure_limit(client):
    # Another spelling is no new budget of guesses against the same account.
    nfc, nfd = spellings()[0]
    assert (await client.register(nfc))["status"] == 201
    for spelling in (nfc, nfd, nfc.upper()):
        assert (await client.login(spelling, "wrong password"))["status"] == 401
    refused = await client.login(unicodedata.normalize("NFD", nfc.upper()))
    assert refused["status"] == 429 and refused["errors"][0]["path"] == "email"
