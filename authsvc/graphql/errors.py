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
from authsvc.metrics import metrics
from authsvc.stores.base import StoreUnavailable

log = logging.getLogger("authsvc.errors")

#: Messages can quote the input (a field name, a value): never more than an excerpt.
MAX_MESSAGE_CHARS = 200

UNAVAILABLE_MESSAGE = "Service temporarily unavailable, retry later"
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
        log.warning("store unavailable request_id=%s: %s", request_id, original)
        metrics().store_errors.labels("redis" if "Redis" in str(original) else "database").inc()
        return _replace(error, UNAVAILABLE_MESSAGE, "SERVICE_UNAVAILABLE")
    log.error("unexpected error request_id=%s", request_id, exc_info=original)
    return _replace(error, INTERNAL_MESSAGE, "INTERNAL_SERVER_ERROR")


def _replace(error: GraphQLError, message: str, code: str) -> dict[str, Any]:
    return GraphQLError(
        message, nodes=error.nodes, path=error.path, extensions={"code": code}
    ).formatted  # type: ignore[return-value]
