"""The webhooks' events as the outbox records them: one row per event and endpoint
(so each endpoint retries, and dies, on its own), the body rendered once at the event
(JSON: id, type, timestamp, data of ids), the same event id for every endpoint and
every retry (the ``webhook-id`` receivers dedupe by).

    {"id": "evt_…", "type": "session.revoked", "timestamp": "2026-12-06T21:50:00.123Z",
     "data": {"user_id": "…", "reason": "logout", "session_id": "…"}}
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence

from authsvc.core.clock import Clock
from authsvc.core.events import EVENT_TYPES, Data
from authsvc.metrics import webhook_metrics
from authsvc.settings import WebhookEndpoint
from authsvc.stores.base import StoreUnavailable
from authsvc.stores.outbox import OutboxStore, OutgoingMessage, TransactionalDatabase, UnitOfWork

log = logging.getLogger(__name__)

CHANNEL = "webhook"


def event_body(event_id: str, event_type: str, timestamp: str, data: dict[str, Data]) -> bytes:
    return json.dumps(
        {"id": event_id, "type": event_type, "timestamp": timestamp, "data": data},
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode()


class WebhookEvents:
    """core/events.py's EventSink for the WEBHOOKS endpoints."""

    def __init__(
        self,
        outbox: OutboxStore,
        db: TransactionalDatabase,
        endpoints: Sequence[WebhookEndpoint],
        clock: Clock,
    ) -> None:
        self._outbox = outbox
        self._db = db
        self._clock = clock
        self._urls = {t: tuple(e.url for e in endpoints if e.wants(t)) for t in EVENT_TYPES}
        self._wanted = frozenset(t for t, urls in self._urls.items() if urls)
        self._committed: list[Callable[[], None]] = []

    def on_committed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each commit that recorded an event (the webhook
        delivery loop's wake)."""
        self._committed.append(callback)

    def wants(self, event_type: str) -> bool:
        return event_type in self._wanted

    async def record(self, tx: UnitOfWork, event_type: str, **data: Data) -> None:
        urls = self._urls.get(event_type, ())
        if not urls:
            return
        now = self._clock()
        timestamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = event_body("evt_" + uuid.uuid4().hex, event_type, timestamp, data)
        for url in urls:
            await self._outbox.enqueue(
                tx, OutgoingMessage(id=uuid.uuid4().hex, kind=event_type, recipient=url,
                                    message=body, channel=CHANNEL),
            )  # fmt: skip
        tx.after_commit(lambda: self._queued(event_type, len(urls)))

    async def publish(self, event_type: str, **data: Data) -> None:
        try:
            async with self._db.transaction() as tx:
                await self.record(tx, event_type, **data)
        except StoreUnavailable as exc:
            # The state it reports changed already (in Redis): the request succeeded.
            webhook_metrics().lost.labels(event_type).inc()  # type: ignore[union-attr]
            log.warning("webhooks: a %s event was lost, the database did not answer: %s",
                        event_type, exc)  # fmt: skip

    def _queued(self, event_type: str, endpoints: int) -> None:
        webhook_metrics().queued.labels(event_type).inc(endpoints)
        for callback in self._committed:
            callback()
