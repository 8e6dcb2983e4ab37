"""The HTTP server of a worker. Kept apart from the server module, like loops.py, so
that the benchmark's bare ceiling runs with the same settings without importing the
service."""

from __future__ import annotations

from collections import Counter
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.iostream
import tornado.web
from tornado.http1connection import HTTP1ConnectionParameters, HTTP1ServerConnection

from authsvc.graphql.client_address import Network, in_networks
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
        max_per_address=settings.http_max_connections_per_address,
        exempt=settings.trusted_proxy_networks,
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
        self,
        *args: Any,
        header_timeout_s: float,
        max_per_address: int = 0,
        exempt: list[Network] | None = None,
        **kwargs: Any,
    ) -> None:
        super().initialize(*args, **kwargs)
        self.header_timeout_s = header_timeout_s
        self.idle_timeout_s = self.conn_params.header_timeout
        self.max_per_address = max_per_address
        self.exempt = exempt or []
        self.per_address: Counter[str] = Counter()
        self.address_of: dict[object, str] = {}  # connection -> the address it counts for

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        peer = str(address[0]) if address else ""
        over = self.max_per_address and self.per_address[peer] >= self.max_per_address
        if over and not in_networks(peer, self.exempt):  # a trusted proxy carries many
            # One address with hundreds of kept-alive connections, each asking again the
            # moment its held refusal ends, kept both loops busy parsing (800 connections
            # stopped every login): refused here, before a byte is read.
            stream.close()
            return
        # HTTPServer.handle_stream hands self.conn_params to the connection it makes.
        shared = self.conn_params
        self.conn_params = ConnectionParameters(shared, self.header_timeout_s)
        try:
            super().handle_stream(stream, address)
        finally:
            self.conn_params = shared
        self.per_address[peer] += 1
        self.address_of[stream] = peer

    def on_close(self, server_conn: object) -> None:
        super().on_close(server_conn)
        peer = self.address_of.pop(getattr(server_conn, "stream", None), None)
        if peer is not None:
            self.per_address[peer] -= 1
            if not self.per_address[peer]:
                del self.per_address[peer]

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
