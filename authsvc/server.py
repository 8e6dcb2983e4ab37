"""Run the HTTP server: worker processes, signals, graceful drain.

One worker serves in the calling process. Several are forked by a supervisor after a
start-up check (migrations, reachability) has passed once; each binds the port itself
with SO_REUSEPORT, so the kernel spreads new connections across them (Tornado's
shared-socket fork_processes left one child with every keep-alive connection in a test
here). A worker that dies is replaced; SIGTERM or SIGINT drains every worker and the
supervisor exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
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


def run(settings: Settings) -> int:
    """Serve with ``settings.effective_workers`` processes; returns the exit code."""
    workers = settings.effective_workers
    if workers == 1:
        run_loop(settings, serve(settings, serve_metrics=True))
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
    """Open and close every store once: migrations (development), the schema version
    check (production) and reachability, so a bad start fails in one process."""
    services = await open_services(settings)
    await services.close()


async def serve(settings: Settings, worker: int = 0, serve_metrics: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, let in-flight requests
    finish (up to SHUTDOWN_TIMEOUT_S), close the pools and return. ``serve_metrics``:
    this process also answers METRICS_PORT (the only worker)."""
    services = await open_services(settings)
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
        await server.close_all_connections()  # idle keep-alive connections
    finally:
        if metrics_server is not None:
            metrics_server.stop()
        await services.close()
    log.info("worker %d stopped", worker)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


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


class Supervisor:
    """Forks the workers, replaces one that dies, and forwards SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
        self.children: dict[int, int] = {}  # pid -> worker number
        self.stopping = False
        self.deaths: list[float] = []

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        for worker in range(self.workers):
            self._spawn(worker)
        if self.settings.metrics_port is not None:
            self._spawn(METRICS_PROCESS)
        log.info("supervisor (pid %d) started %d workers", os.getpid(), self.workers)
        failed = False
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            worker = self.children.pop(pid, None)  # type: ignore[arg-type]
            if worker is None or self.stopping:
                failed |= os.waitstatus_to_exitcode(status) != 0
                continue
            metrics.worker_exited(pid)
            log.error("worker %d (pid %d) died (status %d)", worker, pid, status)
            now = time.monotonic()
            self.deaths = [t for t in self.deaths if now - t < RESPAWN_WINDOW_S] + [now]
            if len(self.deaths) > MAX_RESPAWNS:
                log.error("workers keep dying: stopping")
                self._stop_children()
                failed = True
                continue
            self._spawn(worker)
        log.info("supervisor stopped")
        return 1 if failed else 0

    def _spawn(self, worker: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child: serve, then leave without running the parent's cleanup
            code = 0
            try:
                # Held back until the worker's loop handles them (stop_signalled): a
                # SIGTERM during start-up then drains like any other, instead of killing
                # a half-started worker.
                signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                if worker == METRICS_PROCESS:
                    run_loop(self.settings, serve_aggregated_metrics(self.settings))
                else:
                    run_loop(self.settings, serve(self.settings, worker))
            except BaseException:
                log.exception("worker %d failed", worker)
                code = 1
            finally:
                logging.shutdown()
                sys.stdout.flush()
                os._exit(code)
        self.children[pid] = worker

    def _on_signal(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            log.info("supervisor: %s, stopping the workers", signal.Signals(signum).name)
            self.stopping = True
            self._stop_children()

    def _stop_children(self) -> None:
        self.stopping = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
