"""The HTTP edge shared by every endpoint: JSON answers, request ids, the in-flight
count, and errors that never show a traceback."""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

import orjson
import tornado.web

from authsvc import logs

error_log = logging.getLogger("authsvc.errors")

#: A client's X-Request-ID is kept only if it is short and plain, so logs stay clean.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class JSONHandler(tornado.web.RequestHandler):
    """Answers every HTTP-level error as ``{"errors": [{"message": …}]}``, never HTML
    or a traceback, and tags every response with a request id."""

    request_id: str = "-"
    operation: str = "-"
    outcome: str = "-"
    #: Whether the method runs (it always ends in on_finish), or, for a handler that
    #: streams its body, whether it still waits for the rest of the body.
    answering: bool = True

    def prepare(self) -> None:
        in_flight = self.application.settings["in_flight"]
        in_flight.started()
        self.counted = True
        if in_flight.draining:  # this worker is stopping: the proxy must not reuse this
            self.set_header("Connection", "close")
        self.started = time.perf_counter()
        given = self.request.headers.get("X-Request-ID", "")
        self.request_id = given if REQUEST_ID.match(given) else os.urandom(16).hex()
        self.set_header("X-Request-ID", self.request_id)
        logs.request_id.set(self.request_id)  # on every log line of this request

    def on_finish(self) -> None:
        if getattr(self, "counted", False):
            self.counted = False
            self.application.settings["in_flight"].finished()

    def on_connection_close(self) -> None:
        # A body that will never arrive leaves the handler waiting for ever: no longer
        # in flight. A request being answered stays in flight until its method ends,
        # so that shutdown does not close the pools under its store calls.
        if not self.answering:
            self.on_finish()

    def write_json(self, status: int, body: dict[str, Any] | list[Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(orjson.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Tornado's default names the full URI (a query string may hold a document
        with credentials); ours names the request id and path only."""
        if isinstance(value, tornado.web.HTTPError):
            return  # an answer we chose, already in the access line
        error_log.error(
            "uncaught exception request_id=%s path=%s",
            self.request_id,
            self.request.path,
            exc_info=(typ, value, tb),
        )

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.outcome = f"http_{status_code}"
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(orjson.dumps({"errors": [{"message": self._reason}]}))


class BoundedBodyHandler(JSONHandler):
    """A handler of ``@stream_request_body`` whose body is kept up to
    ``max_body_bytes``: past it, what came is dropped and ``body_too_large`` says so,
    and the handler answers 413 its own way (JSON, or a page)."""

    max_body_bytes: int

    def start_body(self, max_body_bytes: int) -> None:
        """In ``initialize``: an empty body, bounded."""
        self.max_body_bytes = max_body_bytes
        self.body = bytearray()
        self.body_too_large = False

    def data_received(self, chunk: bytes) -> None:
        if self.body_too_large:
            return
        if len(self.body) + len(chunk) > self.max_body_bytes:
            self.body_too_large = True
            self.body.clear()
        else:
            self.body += chunk


class NotFoundHandler(JSONHandler):
    def prepare(self) -> None:
        super().prepare()
        raise tornado.web.HTTPError(404)
