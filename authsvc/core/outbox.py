"""Outbox policy: what a failed delivery comes to, and how long to wait before a retry.

No I/O here: the delivery loop (authsvc/delivery/loop.py) asks, the stores record.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass


class Failure(enum.Enum):
    """Why a delivery failed, which decides what happens to the message."""

    #: The server is down, slow or said 4xx: try again later (an attempt is spent).
    TEMPORARY = "temporary"
    #: The server refused this message for good (5xx on RCPT or DATA): dead at once.
    PERMANENT = "permanent"
    #: Refused AUTH, a TLS failure, TLS required but not offered: no message is to blame,
    #: so no attempt is spent; an operator must fix the settings.
    CONFIGURATION = "configuration"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``max_attempts`` tries; between them an exponential wait from
    ``backoff_base_s``, capped at ``backoff_max_s``, with jitter so that messages that
    failed together (an SMTP outage) are not retried together."""

    max_attempts: int
    backoff_base_s: float
    backoff_max_s: float

    def gives_up(self, attempts: int, failure: Failure) -> bool:
        """Whether a message that failed so after ``attempts`` tries is dead."""
        return failure is Failure.PERMANENT or attempts >= self.max_attempts

    def backoff_s(self, attempts: int, rand: Callable[[], float] = random.random) -> float:
        """The wait after the ``attempts``-th failed try: base * 2^(attempts-1), capped,
        then between half of it and all of it ("equal jitter")."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** max(0, attempts - 1))
        return ceiling / 2 + rand() * ceiling / 2
