"""Run the HTTP server: worker processes, signals, graceful drain.

One worker serves in the calling process. Several are forked by a supervisor after a
start-up check (configuration, the schema) has passed once; each binds the port itself
with SO_REUSEPORT, so the kernel spreads new connections across them (Tornado's
shared-socket fork_processes left one child with every keep-alive connection in a test
here). A worker that dies is replaced; SIGTERM or SIGINT drains every worker and the
supervisor exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Coroutine
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from prometheus_client import REGISTRY

from authsvc import metrics
from authsvc.app import InFlight, make_app
from authsvc.http_server import http_server
from authsvc.loops import loop_factory
from authsvc.services import open_services
from authsvc.settings import Settings

log = logging.getLogger(__name__)

#: The number the supervisor gives the metrics process among its children.
METRICS_PROCESS = -1

#: Allocations between two collections of the youngest generation (Python's default:
#: 700), so that the collector runs every few dozen requests, not every few.
GC_YOUNG_THRESHOLD = 20_000

#: A worker dying this many times within RESPAWN_WINDOW_S means it cannot run: stop.
MAX_RESPAWNS = 5
RESPAWN_WINDOW_S = 30.0
#: A replacement's wait after the n-th recent death: base * 2^(n-1), at most the cap,
#: times a random 0.5-1.5 so that workers dying together do not restart together.
RESPAWN_BASE_DELAY_S = 0.25
RESPAWN_MAX_DELAY_S = 5.0
#: Past MAX_RESPAWNS while other workers still serve: the wait between tries.
RESPAWN_FAILING_DELAY_S = 30.0


def respawn_delay_s(recent_deaths: int) -> float:
    delay = min(RESPAWN_MAX_DELAY_S, RESPAWN_BASE_DELAY_S * 2.0 ** max(0, recent_deaths - 1))
    return delay * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not a secret


def run(settings: Settings) -> int:
    """Serve with ``settings.effective_workers`` processes; returns the exit code."""
    workers = settings.effective_workers
    if workers == 1:
        run_loop(settings, serve(settings, serve_metrics=True, during_outage=True, alone=True))
        return 0
    if settings.metrics_port is not None:
        # Before any fork and any metric: every worker writes its samples to files here.
        metrics.use_multiprocess(tempfile.mkdtemp(prefix="authsvc-metrics-"))
    run_loop(settings, check_startup(settings))  # fail once, clearly, before forking
    return Supervisor(settings, workers).run()


def run_loop(settings: Settings, main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on the event loop EVENT_LOOP names (unset: uvloop when installed)."""
    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        runner.run(main)


def settle_heap() -> None:
    """Once the worker is built: move everything allocated so far (modules, schema,
    pools) out of the collector's sight, and collect the young generation less often.
    A request allocates thousands of short-lived objects; with the default threshold
    the collector ran every few requests and its full passes over the start-up heap
    showed as tens of milliseconds of p99 under load."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


async def check_startup(settings: Settings) -> None:
    """Open and close every store once, so that a bad start (a configuration error, a
    database behind this release) fails in one process, once, before any fork. A
    store that cannot be reached is not a bad start: the workers start without it
    and connect when it returns (open_services, during_outage)."""
    services = await open_services(settings, during_outage=True)
    await services.close()


async def serve(
    settings: Settings,
    worker: int = 0,
    serve_metrics: bool = False,
    during_outage: bool = False,
    alone: bool = False,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, let in-flight requests
    finish (up to SHUTDOWN_TIMEOUT_S), close the pools and return. ``serve_metrics``:
    this process also answers METRICS_PORT (the only worker). ``during_outage``: start
    even when a store cannot be reached (see open_services). ``alone``: no supervisor
    (one worker): this process answers SIGHUP itself."""
    if alone:
        # Before the port listens: a SIGHUP sent the moment it accepts (a test, an
        # impatient script) must find the handler, not the default that ends the process.
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, log.warning, HANGUP_IGNORED)
    services = await open_services(settings, during_outage=during_outage)
    metrics_server = None
    try:
        if serve_metrics and settings.metrics_port is not None:
            metrics_server = listen_metrics(settings, metrics.metrics_app(REGISTRY))
        in_flight = InFlight()
        app = make_app(settings, services, in_flight)
        settle_heap()
        # The handler streams bodies and enforces MAX_BODY_BYTES itself with a clear 413;
        # this outer cap only bounds what a chunked upload can make the server read.
        server = http_server(app, settings, max_body_size=settings.max_body_bytes * 4)
        sockets = tornado.netutil.bind_sockets(
            settings.app_port, settings.app_host, reuse_port=True
        )
        server.add_sockets(sockets)
        services.start_delivery()  # the outbox's mail and webhooks, a task per channel
        services.start_key_reload()  # `authsvc keys rotate` without a restart
        log.info(
            "worker %d (pid %d) listening on http://%s:%d/graphql "
            "(%s; users: %s, sessions: %s; loop: %s)",
            worker,
            os.getpid(),
            settings.app_host,
            settings.app_port,
            settings.node_env,
            settings.users_backend,
            settings.sessions_backend,
            type(asyncio.get_running_loop()).__module__.split(".")[0],
        )
        await stop_signalled()
        log.info("worker %d draining %d in-flight requests", worker, in_flight.count)
        server.stop()  # no new connections
        in_flight.draining = True
        if not await in_flight.drained(settings.shutdown_timeout_s):
            log.warning("worker %d: drain timed out, cutting %d requests", worker, in_flight.count)
        await idle_connections_left(server, DRAIN_IDLE_GRACE_S)
        await in_flight.drained(settings.shutdown_timeout_s)  # those the grace let in
        await server.close_all_connections()  # what is still idle after the grace
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        await services.stop_key_reload()
        await services.stop_delivery(settings.shutdown_timeout_s)
        await services.close()
    log.info("worker %d stopped", worker)


#: After the drain, idle keep-alive connections stay open this long: a client may be
#: sending its next request on one right now, and closing under it loses that request
#: (3 drains in 4 did, under load). Such a request is still answered, with
#: `Connection: close` (in_flight.draining), so the client moves to another worker.
DRAIN_IDLE_GRACE_S = 1.0


async def idle_connections_left(server: tornado.httpserver.HTTPServer, grace_s: float) -> None:
    """Wait until every connection of ``server`` is gone (each closed after answering
    one more request) or ``grace_s`` has passed."""
    deadline = time.monotonic() + grace_s
    # HTTPServer keeps its connections in _connections (close_all_connections reads
    # it too); there is no public count, and no event when one closes: poll.
    while server._connections and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
SUPERVISOR_SIGNALS = STOP_SIGNALS | {signal.SIGCHLD, signal.SIGHUP}
#: Beyond its drain and the closing of its stores, what a stopping worker may take
#: before the supervisor kills it.
STOP_MARGIN_S = 5.0
#: prctl(2) option: the signal a process gets when its parent ends (linux/prctl.h).
PR_SET_PDEATHSIG = 1


def stop_deadline_s(settings: Settings) -> float:
    """The longest a worker may take to stop after SIGTERM: the drain of the requests in
    flight and of those the idle grace lets in (SHUTDOWN_TIMEOUT_S each), the grace,
    the closing of its two stores (STORE_TIMEOUT_S each at most), and a margin."""
    return (
        2 * settings.shutdown_timeout_s
        + DRAIN_IDLE_GRACE_S
        + 2 * settings.store_timeout_s
        + STOP_MARGIN_S
    )


def ignore_hangup() -> None:
    """SIGHUP would end the process (its default action): a closed terminal or a
    `kill -HUP` meant as "reload" must not take the service down. There is nothing
    to reload (settings are read at start), so a worker ignores it; the supervisor,
    or a single worker, logs that it did (HANGUP_IGNORED)."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


HANGUP_IGNORED = (
    "SIGHUP ignored: settings are read at start; restart the service (SIGTERM, then "
    "start it) to change them"
)


async def stop_signalled() -> None:
    """Return once SIGTERM or SIGINT arrives, including one that arrived while a forked
    worker was still starting (held back until now: see Supervisor._spawn)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    await stop.wait()


def listen_metrics(
    settings: Settings, app: tornado.web.Application
) -> tornado.httpserver.HTTPServer:
    assert settings.metrics_port is not None
    server = http_server(app, settings)  # the same bounds on slow clients
    server.listen(settings.metrics_port, settings.metrics_host)
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return server


async def serve_aggregated_metrics(settings: Settings) -> None:
    """The metrics process of a multi-worker service: the sum of every worker's files."""
    server = listen_metrics(settings, metrics.metrics_app(metrics.aggregate_registry()))
    await stop_signalled()
    server.stop()


def stop_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGTERM when ``parent`` ends (Linux; elsewhere
    nothing happens). A supervisor killed outright (SIGKILL, the OOM killer) cannot stop
    its workers: without this they would go on serving on the shared port beside the
    next supervisor that a restart brings, with the old settings. SIGTERM, not SIGKILL:
    the orphan drains its requests like any stopping worker."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent ended before prctl: nobody will signal
        os.kill(os.getpid(), signal.SIGTERM)


class Supervisor:
    """Forks the workers, replaces one that dies, and forwards SIGTERM/SIGINT.

    A replacement waits a little longer after each recent death (bounded, with jitter),
    so a worker that cannot stay up is not respawned in a tight loop. Store outages do
    not kill workers (they start without their stores and connect when they return), so
    deaths in a row mean something else is wrong: past MAX_RESPAWNS within
    RESPAWN_WINDOW_S the service stops, with one line saying so, unless other workers
    still serve: those go on, and the replacement is tried every
    RESPAWN_FAILING_DELAY_S."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
        self.children: dict[int, int] = {}  # pid -> worker number
        self.stopping = False
        self.failed = False
        self.deaths: list[float] = []
        self.respawns: dict[int, float] = {}  # worker number -> when to start it again
        #: Workers that could not be replaced (past MAX_RESPAWNS): a stop while one is
        #: still missing exits 1, so that what runs the service sees it was degraded.
        self.failing: set[int] = set()
        self.kill_at: float | None = None  # once stopping: when stragglers are killed

    def run(self) -> int:
        # Children and stop signals are taken synchronously (sigtimedwait), so that a
        # replacement can wait for its back-off without a timer thread or a busy loop.
        signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
        for worker in range(self.workers):
            self._spawn(worker)
        if self.settings.metrics_port is not None:
            self._spawn(METRICS_PROCESS)
        log.info("supervisor (pid %d) started %d workers", os.getpid(), self.workers)
        while self.children or (self.respawns and not self.stopping):
            self._reap()
            self._respawn_due()
            self._kill_overdue()
            if not self.children and (self.stopping or not self.respawns):
                break
            received = signal.sigtimedwait(SUPERVISOR_SIGNALS, self._wait_s())
            if received is None:
                continue
            if received.si_signo in STOP_SIGNALS:
                self._on_signal(received.si_signo)
            elif received.si_signo == signal.SIGHUP:
                log.warning("supervisor: %s", HANGUP_IGNORED)
        log.info("supervisor stopped")
        return 1 if self.failed else 0

    def _reap(self) -> None:
        """Collect every child that has exited, and plan the replacements."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            worker = self.children.pop(pid, None)
            if worker is None or self.stopping:
                self.failed |= os.waitstatus_to_exitcode(status) != 0
                continue
            metrics.worker_exited(pid)
            log.error("worker %d (pid %d) died (status %d)", worker, pid, status)
            now = time.monotonic()
            self.deaths = [t for t in self.deaths if now - t < RESPAWN_WINDOW_S] + [now]
            if len(self.deaths) > MAX_RESPAWNS:
                serving = sum(1 for w in self.children.values() if w != METRICS_PROCESS)
                if serving:
                    # A replacement that cannot start (a file broken since the others
                    # started: a template, a key record) must not take down the workers
                    # that serve: they keep serving, and it is tried again now and then.
                    log.error(
                        "workers died %d times in %.0f s (the lines above say why); %d "
                        "still serve: trying worker %d again in %.0f s",
                        len(self.deaths),
                        RESPAWN_WINDOW_S,
                        serving,
                        worker,
                        RESPAWN_FAILING_DELAY_S,
                    )
                    self.respawns[worker] = now + RESPAWN_FAILING_DELAY_S
                    self.failing.add(worker)
                    continue
                log.error(
                    "workers died %d times in %.0f s, not for a store outage (the lines "
                    "above say why): stopping the service",
                    len(self.deaths),
                    RESPAWN_WINDOW_S,
                )
                self.failed = True
                self.respawns.clear()
                self._stop_children()
                continue
            self.respawns[worker] = now + respawn_delay_s(len(self.deaths))

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for worker, due in list(self.respawns.items()):
            if due <= now and not self.stopping:
                del self.respawns[worker]
                self._spawn(worker)

    def _kill_overdue(self) -> None:
        """SIGKILL the workers still running past their stop deadline: a worker stuck
        in its drain (a store that does not answer, a bug) must not keep the service
        from stopping."""
        if self.kill_at is None or time.monotonic() < self.kill_at:
            return
        for pid, worker in self.children.items():
            log.error(
                "worker %d (pid %d) did not stop within %.0f s of SIGTERM: killing it",
                worker,
                pid,
                stop_deadline_s(self.settings),
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.failed = True
        self.kill_at = None  # once: the reaping follows

    def _wait_s(self) -> float:
        """Until the next replacement or the stop deadline is due; at most a second (a
        safety net only: a child's exit and the signals wake the wait at once)."""
        now = time.monotonic()
        due = [*self.respawns.values(), *([self.kill_at] if self.kill_at is not None else [])]
        return max(0.0, min([1.0, *(at - now for at in due)]))

    def _spawn(self, worker: int) -> None:
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without running the parent's cleanup
            code = 0
            try:
                # Held back until the worker's loop handles them (stop_signalled): a
                # SIGTERM during start-up then drains like any other, instead of killing
                # a half-started worker.
                signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD, signal.SIGHUP})
                ignore_hangup()
                stop_with_parent(supervisor)
                if worker == METRICS_PROCESS:
                    run_loop(self.settings, serve_aggregated_metrics(self.settings))
                else:
                    # A store that is down is an outage to ride out, not a reason to die
                    # (and be respawned into the same outage).
                    run_loop(self.settings, serve(self.settings, worker, during_outage=True))
            except BaseException:
                log.exception("worker %d failed", worker)
                code = 1
            finally:
                logging.shutdown()
                sys.stdout.flush()
                os._exit(code)
        self.children[pid] = worker

    def _on_signal(self, signum: int) -> None:
        if self.failing & set(self.respawns):
            self.failed = True
        if not self.stopping:
            log.info("supervisor: %s, stopping the workers", signal.Signals(signum).name)
            self.stopping = True
            self._stop_children()

    def _stop_children(self) -> None:
        self.stopping = True
        if self.kill_at is None:
            self.kill_at = time.monotonic() + stop_deadline_s(self.settings)
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
