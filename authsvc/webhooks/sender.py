"""Webhooks as the delivery loop sends them (delivery/channel.py): a POST of the
recorded body to the endpoint's URL with the Standard Webhooks headers, signed now with
every secret the endpoint has now, over Tornado's HTTP client.

What an answer comes to, by choice: 2xx is delivered; anything else (3xx, since no
redirect is followed: an operator fixes the URL; 4xx, which is mostly a receiver's
deployment or configuration fault, a wrong secret, a route not there yet; 5xx; 429 and
503 with Retry-After honoured) is retried with backoff until OUTBOX_MAX_ATTEMPTS, as Svix
and Standard Webhooks senders do: a receiver that is fixed within the retry budget loses
nothing, and a dead message can still be queued again by hand (`authsvc outbox retry`).
A refused or dropped connection, or no answer within WEBHOOK_TIMEOUT_S, fails the
endpoint's other messages of the batch untried (the endpoint is down; others go on).

The answer's body is never read into memory nor stored: last_error keeps the status and
a short reason.
"""

from __future__ import annotations

import email.utils
import json
import ssl
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from authsvc import __version__
from authsvc.core.outbox import Failure
from authsvc.delivery.channel import ChannelSession, DeliveryError
from authsvc.settings import WebhookEndpoint, endpoint_shown, webhook_key
from authsvc.webhooks.events import CHANNEL
from authsvc.webhooks.signing import headers

#: The longest reason phrase kept in last_error.
MAX_REASON_CHARS = 80


class WebhookChannel:
    name = CHANNEL
    settings_hint = "WEBHOOKS"

    def __init__(
        self, endpoints: Sequence[WebhookEndpoint], *, timeout_s: float, concurrency: int
    ) -> None:
        self.concurrency = concurrency
        self._timeout_s = timeout_s
        #: Each endpoint's keys, by URL (the outbox's recipient): read at each send, so
        #: a restart with a new secret signs the retries already queued with it.
        self._keys = {
            e.url: [webhook_key(s.get_secret_value()) for s in e.secrets] for e in endpoints
        }
        self._client: AsyncHTTPClient | None = None

    def route(self, recipient: str) -> str:
        return recipient

    def describe(self, recipient: str) -> str:
        return endpoint_shown(recipient)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ChannelSession]:
        if self._client is None:  # made on the loop that sends
            self._client = AsyncHTTPClient(force_instance=True, max_clients=self.concurrency)
        yield self

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def send(self, recipient: str, message: bytes) -> None:
        keys = self._keys.get(recipient)
        if keys is None:
            raise DeliveryError(Failure.PERMANENT, "the endpoint is no longer in WEBHOOKS")
        event_id = str(json.loads(message)["id"])
        signed = headers(keys, event_id, int(time.time()), message)
        request = HTTPRequest(
            recipient,
            method="POST",
            body=message,
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"authsvc-webhooks/{__version__}",
                **signed,
            },
            connect_timeout=self._timeout_s,
            request_timeout=self._timeout_s,
            follow_redirects=False,
            streaming_callback=_discard,  # the answer's body is never kept
        )
        assert self._client is not None  # session() made it
        try:
            response = await self._client.fetch(request, raise_error=False)
        except HTTPClientError as exc:  # timeouts, a closed stream (Tornado's 599)
            raise DeliveryError(Failure.TEMPORARY, str(exc), connection=True) from exc
        except (OSError, ssl.SSLError) as exc:  # refused, no route, TLS
            text = f"{type(exc).__name__}: {exc}"
            raise DeliveryError(Failure.TEMPORARY, text, connection=True) from exc
        if 200 <= response.code < 300:
            return
        reason = (response.reason or "")[:MAX_REASON_CHARS]
        raise DeliveryError(
            Failure.TEMPORARY,
            f"HTTP {response.code} {reason}".strip(),
            retry_after_s=retry_after(response.headers.get("Retry-After")),
        )


def _discard(chunk: bytes) -> None:
    return None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, moment.timestamp() - current)
