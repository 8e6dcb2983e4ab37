"""Concurrency is correctness: racing requests end with exactly one winner."""

from __future__ import annotations

import asyncio
import json

from tests.helpers import LOGOUT, PASSWORD, REFRESH, REGISTER, new_email


async def test_20_concurrent_registrations_make_one_account(client):
    email = new_email()
    variables = {"email": email, "password": PASSWORD}
    answers = await asyncio.gather(*(client.post(REGISTER, variables) for _ in range(20)))
    assert all(status == 200 for status, _ in answers)
    results = [body["data"]["register"] for _, body in answers]
    assert sum(r["status"] == 201 for r in results) == 1
    taken = [r for r in results if r["status"] != 201]
    assert len(taken) == 19
    assert all(r["errors"] == [{"path": "email", "message": "already taken"}] for r in taken)
    # The one account works; its id is the one the winner reported.
    winner = json.loads(next(r for r in results if r["status"] == 201)["payload"])
    login = await client.login(email)
    assert login["status"] == 200
    access = json.loads(login["payload"])["access_token"]
    _, me = await client.post("{ me { id } }", token=access)
    assert me["data"]["me"]["id"] == winner["id"]


async def test_20_concurrent_logouts_and_refreshes_end_consistent(client):
    _, refresh = await client.tokens()
    calls = []
    for i in range(20):
        calls.append(client.post(LOGOUT if i % 2 else REFRESH, token=refresh))
    answers = await asyncio.gather(*calls)
    logouts = [body for i, (_, body) in enumerate(answers) if i % 2]
    refreshes = [body for i, (_, body) in enumerate(answers) if not i % 2]
    assert sum(body.get("data") == {"logout": True} for body in logouts) == 1
    assert all(
        body.get("data") == {"logout": True}
        or body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        for body in logouts
    )
    for body in refreshes:  # each either beat the logout or was refused, nothing else
        assert (body.get("data") or {}).get("refresh") or (
            body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        )
    _, body = await client.post(REFRESH, token=refresh)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
