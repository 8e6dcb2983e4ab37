"""Standard Webhooks signatures: ``webhook-signature`` is ``v1,`` and the base64
HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``, one such entry per secret,
separated by spaces (a receiver accepts the request when any one verifies, so a secret
can be rotated with no gap: configure the new one first, then drop the old one).

Signed at send time, not at enqueue: the timestamp is the attempt's (receivers refuse
one older than a few minutes, and a retry may come hours later), and a secret rotated
meanwhile signs the retries too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


def signature(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header's value for ``body`` under every key."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


def headers(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(keys, webhook_id, timestamp, body),
    }
