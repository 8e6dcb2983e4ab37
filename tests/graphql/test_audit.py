"""Audit events: stable names, ids only, and the request id on every line."""

from __future__ import annotations

import logging

from tests.helpers import CHANGE_PASSWORD, LOGOUT, LOGOUT_ALL, PASSWORD, new_email


async def test_audit_events_name_what_happened_and_nothing_secret(client, services, caplog):
    caplog.set_level(logging.INFO, logger="authsvc")
    email = new_email()
    access, refresh = await client.tokens(email)
    await client.login(email, "wrong password")
    await client.post(LOGOUT, token=refresh)
    access, _ = await client.tokens(email)
    await client.post(
        CHANGE_PASSWORD, {"current": PASSWORD, "new": "a different passphrase"}, token=access
    )
    await client.post(LOGOUT_ALL, token=access)
    await services.accounts.set_disabled(email, True)
    events = [r.event for r in caplog.records if r.name == "authsvc.audit"]
    assert events == [
        "registered", "login_succeeded", "login_failed", "logged_out", "login_succeeded",
        "password_changed", "logged_out_everywhere", "user_disabled",
    ]  # fmt: skip
    audit_records = [r for r in caplog.records if r.name == "authsvc.audit"]
    assert all(r.message.startswith(f"event={r.event}") for r in audit_records)
    text = "\n".join(r.getMessage() + repr(r.__dict__) for r in audit_records)
    for secret in (email, PASSWORD, access, refresh, "a different passphrase"):
        assert secret not in text


async def test_every_line_of_a_request_carries_its_request_id(client, caplog):
    caplog.set_level(logging.INFO, logger="authsvc")
    await client.register(new_email())  # a line from the access log and one audit event
    caplog.clear()
    email = new_email()
    await client.post(
        "mutation($e: String!, $p: String!) { register(email: $e, password: $p) { status } }",
        {"e": email, "p": PASSWORD},
        headers={"X-Request-ID": "req-audit-1"},
    )
    lines = [r for r in caplog.records if r.name in ("authsvc.audit", "authsvc.access")]
    assert {r.name for r in lines} == {"authsvc.audit", "authsvc.access"}
    assert {r.request_id for r in lines} == {"req-audit-1"}
