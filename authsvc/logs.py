"""Logging: JSON lines in production, readable lines in development, and the request id
on every line written while a request is being served.

Nothing here ever formats a token, password or secret: the access log and the audit
events name ids, operations and outcomes only.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Literal

from pythonjsonlogger.orjson import OrjsonFormatter

#: The id of the request being served in this context ("-" outside any request).
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


_plain_record_factory = logging.getLogRecordFactory()


def _record_with_request_id(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _plain_record_factory(*args, **kwargs)
    record.request_id = request_id.get()
    return record


def stamp_request_ids() -> None:
    """Every record made from now on carries ``request_id``, whichever handler (or test
    capture) receives it."""
    logging.setLogRecordFactory(_record_with_request_id)


def configure_logging(level: str, log_format: Literal["json", "text"] = "text") -> None:
    stamp_request_ids()
    # The logging module's own optimisations (its documentation's table): no format
    # here names the caller, thread or process, and looking them up cost more per
    # access line than the rest of writing it.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(
            OrjsonFormatter(  # python-json-logger's, on orjson: the same lines, faster
                "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Tornado's own access log would duplicate ours; aiosqlite logs every statement
    # with its parameters (emails, password hashes) at DEBUG.
    for noisy in ("tornado.access", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # redis-py's cluster client says "Topology refresh failed" at ERROR on every refresh
    # (about once a second, per worker) while no node answers: the outage is ours to
    # say, once per interval (graphql/errors.py), so its lines are held back alike.
    for repetitive in LIBRARY_LOGGERS_THROTTLED:
        library_logger = logging.getLogger(repetitive)
        if not any(isinstance(f, RepeatedLines) for f in library_logger.filters):
            library_logger.addFilter(RepeatedLines(LIBRARY_LINE_INTERVAL_S))


#: Library loggers that repeat one line for as long as a store is down (a logger's
#: filter sees only its own records, not its children's: each is named).
LIBRARY_LOGGERS_THROTTLED = ("redis.asyncio.cluster", "redis.cluster")
LIBRARY_LINE_INTERVAL_S = 10.0


class Throttle:
    """At most one log line per key per ``interval_s``: a condition that hits every
    request (a store down, a misconfigured proxy) is said once in a while, with how
    often it happened in between, instead of once per request."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, key: str) -> int | None:
        """None while ``key`` was said less than ``interval_s`` ago (this one is held
        back and counted); otherwise how many were held back since it was last said."""
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


class RepeatedLines(logging.Filter):
    """A logger filter that lets through one line of a kind per ``interval_s`` (the kind:
    the logger and the message up to its first colon, before the error it quotes),
    counting those held back into the next one it lets through."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._throttle = Throttle(interval_s, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = str(record.msg).split(":", 1)[0]
        held = self._throttle.due(f"{record.name}:{kind}")
        if held is None:
            return False
        if held:
            record.msg = f"{record.getMessage()} ({held} more like it since the last line)"
            record.args = ()
        return True
