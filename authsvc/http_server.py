"""The HTTP server of a worker. Kept apart from the server module, like loops.py, so
that the benchmark's bare ceiling runs with the same settings without importing the
service."""

from __future__ import annotations

from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.web
from tornado.http1connection import HTTP1ConnectionParameters, HTTP1ServerConnection

from authsvc.settings import Settings

#: Bytes read from a socket at a time. Tornado's default is 64 KB, and it zero-fills a
#: buffer of that size for every read, twice per request: about a tenth of the work of
#: a refresh. Requests here are under 2 KB; a larger body just takes more reads.
READ_CHUNK_BYTES = 8192


def http_server(
    app: tornado.web.Application, settings: Settings, max_body_size: int | None = None
) -> TimedHTTPServer:
    return TimedHTTPServer(
        app,
        max_body_size=max_body_size,
        xheaders=False,
        chunk_size=READ_CHUNK_BYTES,
        header_timeout_s=settings.http_header_timeout_s,
        body_timeout=settings.http_body_timeout_s,
        idle_connection_timeout=settings.http_idle_timeout_s,
    )


class ConnectionParameters(HTTP1ConnectionParameters):
    """One connection's copy of the server's parameters: its header timeout grows from
    the first request's deadline to the keep-alive idle time once that is answered."""

    def __init__(self, shared: HTTP1ConnectionParameters, header_timeout_s: float) -> None:
        self.__dict__.update(vars(shared))
        self.header_timeout = header_timeout_s
        self.requests = 0


class TimedHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTPServer with every wait on a client bounded, so that a slow or
    silent client cannot hold a connection (a file descriptor and buffers) for ever
    when nothing sits in front:

    - a new connection must send its first request's headers within
      ``header_timeout_s`` of being accepted (slowloris: headers sent a byte at a time);
    - a body must arrive within ``body_timeout`` of its headers (a Content-Length
      that is never reached);
    - a kept-alive connection may wait ``idle_connection_timeout`` between requests.

    Tornado has a single timer for the first and the last (its ``header_timeout`` runs
    from the moment a connection waits for a request until the headers are in, and
    HTTPServer sets it to the idle timeout), so each connection gets its own copy of
    the parameters, and the timer becomes the idle one after the first request.
    """

    def initialize(  # type: ignore[override]
        self, *args: Any, header_timeout_s: float, **kwargs: Any
    ) -> None:
        super().initialize(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = self.conn_params.header_timeout

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        # HTTPServer.handle_stream hands self.conn_params to the connection it makes.
        shared = self.conn_params
        self.conn_params = ConnectionParameters(shared, self.header_timeout_s)
        try:
            super().handle_stream(stream, address)
        finally:
            self.conn_params = shared

    def start_request(
        self, server_conn: object, request_conn: tornado.httputil.HTTPConnection
    ) -> tornado.httputil.HTTPMessageDelegate:
        # Called as a connection starts to wait for each request's headers.
        if isinstance(server_conn, HTTP1ServerConnection):
            params = server_conn.params
            if isinstance(params, ConnectionParameters):
                params.requests += 1
                if params.requests == 2:  # the first was answered: now it is idle time
                    params.header_timeout = self.idle_timeout_s
        return super().start_request(server_conn, request_conn)
