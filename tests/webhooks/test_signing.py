"""The signatures are the Standard Webhooks scheme: the reference library verifies
them under each configured secret (a rotation: old and new both verify), and refuses a
changed body, id or timestamp. Retry-After is read in both of its forms."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from authsvc.settings import webhook_key
from authsvc.webhooks.events import event_body
from authsvc.webhooks.sender import retry_after
from authsvc.webhooks.signing import headers
from tests.webhooks.conftest import new_secret

BODY = event_body("evt_1", "user.deleted", "2026-12-06T21:50:00.000Z", {"user_id": "u1"})


def test_every_secret_of_an_endpoint_signs_and_each_verifies():
    old, new = new_secret(), new_secret()
    signed = headers([webhook_key(new), webhook_key(old)], "evt_1", int(time.time()), BODY)
    assert signed["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        assert Webhook(secret).verify(BODY, signed) == {
            "id": "evt_1", "type": "user.deleted", "timestamp": "2026-12-06T21:50:00.000Z",
            "data": {"user_id": "u1"}}  # fmt: skip
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, signed)


@pytest.mark.parametrize("change", ["body", "id", "timestamp"])
def test_a_changed_body_id_or_timestamp_fails(change):
    secret = new_secret()
    now = int(time.time())
    signed = headers([webhook_key(secret)], "evt_1", now, BODY)
    body = BODY.replace(b"u1", b"u2") if change == "body" else BODY
    if change == "id":
        signed["webhook-id"] = "evt_2"
    if change == "timestamp":
        signed["webhook-timestamp"] = str(now - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, signed)


def test_retry_after_in_seconds_or_as_a_date():
    now = time.time()
    assert retry_after("120") == 120
    assert retry_after(None) is None and retry_after("soon") is None
    later = retry_after(formatdate(now + 60, usegmt=True), now)
    assert later is not None and 59 <= later <= 61
    assert retry_after(formatdate(now - 60, usegmt=True), now) == 0
