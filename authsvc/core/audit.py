"""Audit events: log records with a stable ``event`` name (and ids, never an email,
token, password or address), for whatever collects the logs to alert on.

    registered, login_succeeded, login_failed, logged_out, logged_out_everywhere,
    refresh_reuse_detected, password_changed, user_disabled, user_enabled
"""

from __future__ import annotations

import logging
from collections.abc import Callable

audit_log = logging.getLogger("authsvc.audit")

Subscriber = Callable[[str, dict[str, str]], None]
_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    """Call ``subscriber(event, ids)`` for every event (metrics count them)."""
    _subscribers.append(subscriber)


def audit(event: str, level: int = logging.INFO, *, log: bool = True, **ids: str) -> None:
    """One audit record: readable as ``event=… key=…``, and as fields in JSON logs.
    ``log=False`` only tells the subscribers (events too frequent to log each)."""
    for subscriber in _subscribers:
        subscriber(event, ids)
    if log:
        text = " ".join(f"{key}={value}" for key, value in ids.items())
        audit_log.log(level, "event=%s %s", event, text, extra={"event": event, **ids})
