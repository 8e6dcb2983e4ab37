"""The one place where errors become what a client sees.

Domain errors carry their own message and ``extensions.code``; a store outage becomes
SERVICE_UNAVAILABLE; anything else is logged with the request id and answered with a
generic message, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError

from authsvc.core.errors import DomainError
from authsvc.logs import Throttle
from authsvc.metrics import metrics
from authsvc.stores.base import StoreUnavailable

log = logging.getLogger("authsvc.errors")

#: Messages can quote the input (a field name, a value): never more than an excerpt.
MAX_MESSAGE_CHARS = 200

UNAVAILABLE_MESSAGE = "Service temporarily unavailable, retry later"
#: The retry hint of a SERVICE_UNAVAILABLE answer (extensions.retryAfter, seconds).
UNAVAILABLE_RETRY_S = 1
#: A store that is down fails every request that needs it: one line per store and
#: cause per interval says so, with the count of those it stood for.
OUTAGE_LOG_INTERVAL_S = 10.0
_outage_lines = Throttle(OUTAGE_LOG_INTERVAL_S)
INTERNAL_MESSAGE = "Internal server error"


def format_errors(
    errors: Iterable[GraphQLError], request_id: str, default_code: str | None = None
) -> list[dict[str, Any]]:
    """Client-facing error dicts. ``default_code`` labels errors with no cause and no
    code of their own (validation errors)."""
    return [_format(error, request_id, default_code) for error in errors]


def _format(error: GraphQLError, request_id: str, default_code: str | None) -> dict[str, Any]:
    original = error.original_error
    # A GraphQLError as the cause is graphql-core's own request error (variable
    # coercion): its message is meant for the client.
    if original is None or isinstance(original, DomainError | GraphQLError):
        formatted: dict[str, Any] = dict(error.formatted)
        if len(formatted["message"]) > MAX_MESSAGE_CHARS:
            formatted["message"] = formatted["message"][: MAX_MESSAGE_CHARS - 1] + "…"
        extensions: dict[str, Any] = dict(formatted.get("extensions") or {})
        if default_code and "code" not in extensions:
            formatted["extensions"] = extensions | {"code": default_code}
        return formatted
    if isinstance(original, StoreUnavailable):
        note_store_unavailable(original, request_id)
        return _replace(
            error, UNAVAILABLE_MESSAGE, "SERVICE_UNAVAILABLE", retryAfter=UNAVAILABLE_RETRY_S
        )
    log.error("unexpected error request_id=%s", request_id, exc_info=original)
    return _replace(error, INTERNAL_MESSAGE, "INTERNAL_SERVER_ERROR")


def note_store_unavailable(error: StoreUnavailable, request_id: str) -> None:
    """Count a request failed by a store outage, and log it (one line per store and
    cause every OUTAGE_LOG_INTERVAL_S): for every edge that answers it, GraphQL or not."""
    metrics().store_errors.labels(error.store or "unknown", error.cause).inc()
    held = _outage_lines.due(f"{error.store}:{error.cause}")
    if held is not None:
        log.warning(
            "store unavailable request_id=%s: %s (%d more like it since the last line)",
            request_id,
            error,
            held,
        )


def _replace(error: GraphQLError, message: str, code: str, **extra: Any) -> dict[str, Any]:
    return GraphQLError(
        message, nodes=error.nodes, path=error.path, extensions={"code": code, **extra}
    ).formatted  # type: ignore[return-value]
