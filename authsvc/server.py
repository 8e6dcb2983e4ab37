"""Run the HTTP server: listen, serve until SIGTERM/SIGINT, drain, close the stores."""

from __future__ import annotations

import asyncio
import logging
import signal

import tornado.httpserver
import tornado.netutil

from authsvc.app import make_app
from authsvc.services import open_services
from authsvc.settings import Settings

log = logging.getLogger(__name__)

#: How long in-flight requests get to finish after SIGTERM before they are cut.
DRAIN_TIMEOUT_S = 10.0


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then stop accepting, let in-flight requests
    finish, close the pools and return (the process then exits 0)."""
    services = await open_services(settings)
    try:
        app = make_app(settings, services)
        # The handler streams bodies and enforces MAX_BODY_BYTES itself with a clear 413;
        # this outer cap only bounds what a chunked upload can make the server read.
        server = tornado.httpserver.HTTPServer(
            app, max_body_size=settings.max_body_bytes * 4, xheaders=False
        )
        sockets = tornado.netutil.bind_sockets(
            settings.app_port, settings.app_host, reuse_port=True
        )
        server.add_sockets(sockets)
        log.info(
            "authsvc listening on http://%s:%d/graphql (%s; users: %s, sessions: %s)",
            settings.app_host,
            settings.app_port,
            settings.node_env,
            settings.users_backend,
            settings.sessions_backend,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down: draining in-flight requests")
        server.stop()
        try:
            await asyncio.wait_for(server.close_all_connections(), DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning("drain timed out after %.0f s", DRAIN_TIMEOUT_S)
    finally:
        await services.close()
    log.info("stopped")
