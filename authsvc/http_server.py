"""The HTTP server of a worker. Kept apart from the server module, like loops.py, so
that the benchmark's bare ceiling runs with the same settings without importing the
service."""

from __future__ import annotations

import tornado.httpserver
import tornado.web

#: Bytes read from a socket at a time. Tornado's default is 64 KB, and it zero-fills a
#: buffer of that size for every read, twice per request: about a tenth of the work of
#: a refresh. Requests here are under 2 KB; a larger body just takes more reads.
READ_CHUNK_BYTES = 8192


def http_server(
    app: tornado.web.Application, max_body_size: int | None = None
) -> tornado.httpserver.HTTPServer:
    return tornado.httpserver.HTTPServer(
        app, max_body_size=max_body_size, xheaders=False, chunk_size=READ_CHUNK_BYTES
    )
