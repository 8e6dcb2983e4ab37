"""Unexpected errors: logged with the request id, answered generically."""

from __future__ import annotations

import logging

from graphql import GraphQLError

from authsvc.core.errors import Unauthorized
from authsvc.graphql.errors import format_errors
from authsvc.stores.base import StoreUnavailable


def wrapped(exc: Exception) -> GraphQLError:
    return GraphQLError(str(exc), path=["me"], original_error=exc)


def test_unexpected_error_is_generic_for_the_client_and_logged(caplog):
    caplog.set_level(logging.ERROR, logger="authsvc.errors")
    [error] = format_errors([wrapped(RuntimeError("boom in /srv/app.py"))], "req-1")
    assert error == {
        "message": "Internal server error",
        "path": ["me"],
        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
    }
    assert "request_id=req-1" in caplog.text and "RuntimeError" in caplog.text


def test_store_outage_is_service_unavailable():
    [error] = format_errors([wrapped(StoreUnavailable("Redis unavailable: ConnectionError"))], "r")
    assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retryAfter": 1}
    assert "Redis" not in error["message"]


def test_domain_error_keeps_its_message_and_code():
    [error] = format_errors([wrapped(Unauthorized())], "r")
    assert error["message"] == "Unauthorized"
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
