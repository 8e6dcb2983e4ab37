"""The delivery loop: a task per channel in each serving process that claims due
messages of its channel from the outbox, sends them outside any transaction through the
channel's adapter (delivery/channel.py), and records each outcome under its claim.

It never touches a request: a slow or failing server slows only this task. A store
outage pauses it (said once per outage) and it goes on when the store returns; nothing
but stop() ends it. Several processes and hosts run one each on one outbox: the claim
(SKIP LOCKED on MariaDB, BEGIN IMMEDIATE on SQLite) gives each message to one of them,
and its fence keeps a claimer whose lease passed from recording anything.

One loop class, one claim path, one task per channel (mail, webhooks) rather than one
task for both: each channel keeps its own pacing (an SMTP outage pauses mail for
OUTBOX_BACKOFF_BASE_S, a full batch of webhooks goes on at once), and a batch of one
channel never waits for the other's slowest send: a stalled webhook endpoint cannot
hold up a password-reset mail.

Within a batch, the messages of one route (the SMTP server; one webhook endpoint) go
one after the other, and up to the channel's ``concurrency`` routes at once: a dead
endpoint costs its own messages one timeout per batch, and nobody else anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from authsvc.core.outbox import Failure, RetryPolicy
from authsvc.delivery.channel import Channel, ChannelSession, DeliveryError
from authsvc.logs import Throttle
from authsvc.metrics import outbox_metrics
from authsvc.stores.base import StoreUnavailable
from authsvc.stores.outbox import ClaimedMessage, OutboxStore

log = logging.getLogger(__name__)

#: How often each process deletes sent messages past OUTBOX_KEEP_SENT_S, and how many
#: one statement deletes at most.
PRUNE_EVERY_S = 3600.0
PRUNE_BATCH = 1000
#: How often one kind of configuration fault is logged (with the count held back).
FAULT_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    batch: int
    lease_s: float
    poll_s: float
    #: The wait after a configuration fault (AUTH, TLS) before the next try.
    fault_retry_s: float
    #: The longest one send may take (SMTP_TIMEOUT_S, WEBHOOK_TIMEOUT_S): a batch
    #: stops sending this long before its lease ends, so no message goes out under a
    #: lease that has passed.
    send_timeout_s: float
    #: Sent messages of the channel are kept this long (OUTBOX_KEEP_SENT_S; 0: for
    #: good).
    keep_sent_s: float = 7 * 86400


class DeliveryLoop:
    def __init__(
        self, store: OutboxStore, channel: Channel, policy: RetryPolicy, config: DeliverySettings
    ) -> None:
        self._store = store
        self._channel = channel
        self._policy = policy
        self._config = config
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._store_down = False
        self._fault: DeliveryError | None = None
        #: The last batch could reach none of its routes.
        self._unreachable = False
        self._faults = Throttle(FAULT_LOG_INTERVAL_S)
        self._pruned_at: float | None = None  # never yet: at the first turn
        #: Routes being sent to by tasks of their own (channels of concurrency > 1).
        self._busy: dict[str, asyncio.Task[bool]] = {}
        #: Sends at once across those tasks (the channel's concurrency).
        self._sending = asyncio.Semaphore(max(1, channel.concurrency))

    def wake(self) -> None:
        """Look for due messages now (an enqueue has committed)."""
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, grace_s: float = 10.0) -> None:
        """Let a send in progress finish (up to ``grace_s``), then end the task. A
        mail cut short stays claimed and is sent again once its lease passes."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), grace_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        try:
            await self._turns()
        finally:
            # Sends in flight get what is left of stop()'s grace (a cancel reaches them
            # through the gather); one cut short is sent again once its lease passes.
            if self._busy:
                await asyncio.gather(*self._busy.values(), return_exceptions=True)

    async def _turns(self) -> None:
        while not self._stopping:
            self._wake.clear()
            full = False
            try:
                full = await self.deliver_batch() >= self._config.batch
                await self._observe_depth()
                await self._prune_if_due()
                if self._store_down:
                    log.info("outbox: the database answers again, delivering")
                    self._store_down = False
            except StoreUnavailable as exc:
                if not self._store_down:
                    log.warning("outbox: delivery paused until the database answers: %s", exc)
                    self._store_down = True
            except Exception:
                if self._faults.due("unexpected") is not None:
                    log.exception("outbox: delivery failed unexpectedly; going on")
            if self._stopping:
                break
            if full and self._fault is None and not self._store_down and not self._unreachable:
                continue  # more may be due: no wait (unless the SMTP server is down)
            if self._fault is not None:
                # A fault of the settings (refused AUTH, TLS): wait it out whatever is
                # enqueued meanwhile, so that a provider is not sent a bad login per mail.
                self._fault = None
                await self._pause(self._config.fault_retry_s)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._config.poll_s)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, woken early by stop() only."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    async def deliver_batch(self) -> int:
        """Claim one batch and deliver it; returns how many were claimed. Raises
        StoreUnavailable (the batch's claims then pass with their lease)."""
        if self._channel.concurrency > 1:
            return await self._dispatch_batch()
        claimed, routes, send_by = await self._claim_by_route()
        if not claimed:
            return 0
        at_once = asyncio.Semaphore(max(1, self._channel.concurrency))
        async with self._channel.session() as session:
            down = await asyncio.gather(
                *(self._deliver_route(session, route, send_by, at_once)
                  for route in routes.values())
            )  # fmt: skip
        self._unreachable = all(down)
        return claimed

    async def _claim_by_route(
        self, skip: tuple[str, ...] = ()
    ) -> tuple[int, dict[str, list[ClaimedMessage]], float]:
        """Claim one batch (leaving out the routes in ``skip``): how many were claimed,
        their messages by route (each in the order claimed: oldest due first), and the
        time (ours) by which each send must have begun."""
        started = time.monotonic()
        claims = await self._store.claim(
            self._channel.name, self._config.batch, self._config.lease_s, skip=skip
        )
        # The lease is measured on the database's clock, this on ours: both are spans.
        send_by = started + self._config.lease_s - self._config.send_timeout_s
        routes: dict[str, list[ClaimedMessage]] = {}
        for claim in claims:
            routes.setdefault(self._channel.route(claim.recipient), []).append(claim)
        return len(claims), routes, send_by

    async def _dispatch_batch(self) -> int:
        """Claim one batch, leaving out the routes still being sent to, and give each
        route of it a task of its own; returns how many were claimed, without waiting
        for the sends. So a route that hangs until its timeout holds up only its own
        messages: the others' next events are claimed and sent meanwhile (a batch that
        waited for its slowest route would hold each of them up to WEBHOOK_TIMEOUT_S
        whenever the hanging endpoint's retries come due). Each route's messages still
        go one after the other, and a route is never sent to by two tasks here.
        Needs a channel whose route is the recipient (webhooks: the endpoint)."""
        if len(self._busy) >= self._channel.concurrency:
            return 0  # a route that ends wakes the loop
        claimed, routes, send_by = await self._claim_by_route(skip=tuple(self._busy))
        self._unreachable = False  # a route that is down waits as its backoff says
        for route, group in routes.items():
            task = asyncio.get_running_loop().create_task(self._route_task(group, send_by))
            self._busy[route] = task
            task.add_done_callback(lambda _, route=route: self._route_done(route))  # type: ignore[misc]
        return claimed

    async def _route_task(self, claims: list[ClaimedMessage], send_by: float) -> bool:
        async with self._channel.session() as session:
            return await self._deliver_route(session, claims, send_by, self._sending)

    def _route_done(self, route: str) -> None:
        task = self._busy.pop(route, None)
        failed = task is not None and not task.cancelled() and task.exception() is not None
        # A store outage while recording, say: the route's claims pass with their lease.
        if failed and task is not None and self._faults.due("route") is not None:
            log.warning("outbox: %s delivery to %s ended early: %s", self._channel.name,
                        self._channel.describe(route), task.exception())  # fmt: skip
        self._wake.set()

    async def _deliver_route(
        self,
        session: ChannelSession,
        claims: list[ClaimedMessage],
        send_by: float,
        at_once: asyncio.Semaphore,
    ) -> bool:
        """Send one route's messages in order; True if its server could not be
        reached (or dropped the connection)."""
        async with at_once:
            down: DeliveryError | None = None
            for claim in claims:
                if self._fault is not None or time.monotonic() > send_by:
                    reason = str(self._fault) if self._fault else "lease running out"
                    await self._store.release(claim, self._config.fault_retry_s, reason)
                    continue
                if down is not None:  # the server is unreachable: no use trying each
                    await self._failed(claim, down)
                    continue
                try:
                    await session.send(claim.recipient, claim.message)
                except DeliveryError as exc:
                    await self._failed(claim, exc)
                    if exc.connection and exc.failure is Failure.TEMPORARY:
                        down = exc
                    continue
                except Exception as exc:
                    # A message the channel cannot handle at all must end as this
                    # message's failure: escaping, it left its batch claimed and retried
                    # for ever.
                    log.error("outbox: message %s (%s) could not be sent", claim.id,
                              claim.kind, exc_info=exc)  # fmt: skip
                    await self._failed(
                        claim,
                        DeliveryError(
                            Failure.PERMANENT, f"unexpected {type(exc).__name__} sending it"
                        ),
                    )
                    continue
                if await self._store.mark_sent(claim):
                    outbox_metrics(self._channel.name).sent.labels(claim.kind).inc()
                else:
                    self._lost(claim)
            return down is not None

    async def _failed(self, claim: ClaimedMessage, error: DeliveryError) -> None:
        counted = outbox_metrics(self._channel.name)
        if error.failure is Failure.CONFIGURATION:
            self._fault = error
            held = self._faults.due(f"fault:{type(error.__cause__).__name__}")
            if held is not None:
                more = f" ({held} more since the last line)" if held else ""
                log.error(
                    "outbox: cannot send %s, check %s: %s%s",
                    self._channel.name, self._channel.settings_hint, error, more,
                )  # fmt: skip
            if not await self._store.release(claim, self._config.fault_retry_s, str(error)):
                self._lost(claim)
            return
        if error.unreached:
            # No SMTP server could be reached: an outage of every mail, not a try of this
            # one. Not counted, so that an outage longer than the retry budget kills
            # nothing queued; it waits as its tries so far say.
            delay = self._policy.backoff_s(max(1, claim.attempts - 1))
            if await self._store.release(claim, delay, str(error)):
                counted.retried.labels(claim.kind).inc()
            else:
                self._lost(claim)
            return
        if self._policy.gives_up(claim.attempts, error.failure):
            if await self._store.mark_dead(claim, str(error)):
                counted.dead.labels(claim.kind).inc()
                log.error(
                    "outbox: message %s (%s to %s) is dead after %d attempts: %s",
                    claim.id, claim.kind, self._channel.describe(claim.recipient),
                    claim.attempts, error,
                )  # fmt: skip
            else:
                self._lost(claim)
            return
        delay = self._policy.backoff_s(claim.attempts)
        if error.retry_after_s is not None:
            # The server's own wait, but never past the longest backoff: a receiver
            # that asks for a day must not keep an event from it that long.
            delay = max(delay, min(error.retry_after_s, self._policy.backoff_max_s))
        if await self._store.retry_later(claim, delay, str(error)):
            counted.retried.labels(claim.kind).inc()
            log.info(
                "outbox: message %s (%s to %s) failed (attempt %d), retry in %.0f s: %s",
                claim.id, claim.kind, self._channel.describe(claim.recipient),
                claim.attempts, delay, error,
            )  # fmt: skip
        else:
            self._lost(claim)

    def _lost(self, claim: ClaimedMessage) -> None:
        log.warning(
            "outbox: message %s: lease passed before its outcome was recorded (another "
            "worker has it now; it may be delivered twice)", claim.id,
        )  # fmt: skip

    async def _prune_if_due(self) -> None:
        """Now and then, delete what was sent long ago: the table holds what is waiting
        and a bounded history, not every mail ever sent."""
        keep_s = self._config.keep_sent_s
        now = time.monotonic()
        if not keep_s or (self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY_S):
            return
        self._pruned_at = now
        # One bounded statement a turn: if more are due, the next turn (of the next
        # poll, not an hour later) takes them.
        if await self._store.purge_sent(self._channel.name, keep_s, PRUNE_BATCH) == PRUNE_BATCH:
            self._pruned_at = None

    async def _observe_depth(self) -> None:
        stats = await self._store.stats(self._channel.name)
        counted = outbox_metrics(self._channel.name)
        counted.depth.set(stats.depth)
        counted.oldest_age.set(stats.oldest_age_s)
