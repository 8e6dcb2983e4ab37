"""One access line per request; never a token, password or secret in any log line."""

from __future__ import annotations

import logging

from tests.conftest import ACCESS_SECRET, REFRESH_SECRET
from tests.helpers import LOGOUT, ME, PASSWORD, REFRESH, new_email


async def test_access_lines_name_request_operation_outcome_and_duration(client, caplog):
    caplog.set_level(logging.DEBUG, logger="authsvc")
    email = new_email()
    access, refresh = await client.tokens(email)
    await client.post(ME, token=access)
    await client.post(REFRESH, token=refresh)
    await client.post(LOGOUT, token=refresh)
    await client.post(REFRESH, token=refresh)
    await client.post(ME, token="garbage", headers={"X-Request-ID": "trace-42"})
    lines = [r.getMessage() for r in caplog.records if r.name == "authsvc.access"]
    assert len(lines) == 7
    assert lines[0].startswith("request_id=") and "op=register outcome=ok" in lines[0]
    assert "op=login outcome=ok" in lines[1]
    assert "op=refresh outcome=UNAUTHENTICATED" in lines[5]
    assert (
        lines[6].startswith("request_id=trace-42 ") and "op=me outcome=UNAUTHENTICATED" in lines[6]
    )
    assert all("duration_ms=" in line and "status=200" in line for line in lines)

    everything = "\n".join(r.getMessage() + str(r.args) for r in caplog.records)
    for secret in (PASSWORD, access, refresh, ACCESS_SECRET, REFRESH_SECRET, email):
        assert secret not in everything


async def test_request_id_is_returned_and_a_bad_one_replaced(client):
    response = await client.raw(body="{}", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    response = await client.raw(body="{}", headers={"X-Request-ID": "no spaces\tor tabs"})
    assert response.headers["X-Request-ID"] != "no spaces\tor tabs"
    assert len(response.headers["X-Request-ID"]) == 32
