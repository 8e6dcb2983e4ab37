"""Rate limits and lockout, counted in the CounterStore so that they hold across every
worker process and host.

Fixed windows: the first counted hit starts a window of ``window_s``; past ``max`` hits
the subject is refused until the window ends. A hit is counted before it is judged
(increment, then compare, in one atomic step of the store), so attempts that arrive
together cannot all pass a check that none of them has counted yet: refusals are decided
before any password is hashed or anything is written, and N + k parallel attempts do
the work of at most N. Lockout is therefore always temporary and bounded by its window,
and a second, longer counter of consecutive failures (reset by a success) makes sure an
account never takes more than 100 failed attempts in a row (NIST SP 800-63B §5.2.2).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime

from authsvc.core.audit import audit
from authsvc.core.clock import Clock
from authsvc.core.errors import FieldError, InvalidInput
from authsvc.stores.base import CounterStore

#: NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts on one account.
MAX_CONSECUTIVE_FAILURES = 100

#: The longest window a limit may have (a year): a longer one is a typo, and Redis
#: refuses expiry times that overflow.
MAX_WINDOW_S = 366 * 86400
#: The shortest (a second): counters keep whole milliseconds, so a window of less than
#: one restarted with every hit and the limit was off in all but name.
MIN_WINDOW_S = 1
_LIMIT = re.compile(r"([0-9]+)\s*/\s*([0-9]+(?:\.[0-9]+)?)")


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``max`` hits per ``window_s`` seconds; ``max == 0`` turns it off."""

    max: int
    window_s: float

    @classmethod
    def parse(cls, text: str) -> Limit:
        """``"10/900"``: 10 per 900 seconds; ``"off"``. Raises ValueError with one line.

        ``"0/900"`` and ``"10/0"`` are refused, not read as "off": a zero that silently
        turned a limit off (or a window of nothing) is a typo nobody would notice."""
        if text.strip().lower() == "off":
            return cls(0, 0)
        written = _LIMIT.fullmatch(text.strip())  # not int()/float(): they read "٣", "1e3"
        if written is not None:
            limit = cls(int(written[1]), float(written[2]))
            if limit.max >= 1 and MIN_WINDOW_S <= limit.window_s <= MAX_WINDOW_S:
                return limit
        raise ValueError(
            f"a limit is COUNT/SECONDS with COUNT at least 1 and SECONDS from {MIN_WINDOW_S}"
            f' to {MAX_WINDOW_S}, or "off" to turn it off'
        )

    @property
    def on(self) -> bool:
        return self.max > 0


@dataclass(frozen=True, slots=True)
class RateLimitPolicy:
    #: Failed logins per account from one client address (the short window): one
    #: attacker's address cannot lock the account's owner out.
    login_failures_per_account: Limit
    login_attempts_per_ip: Limit
    registrations_per_ip: Limit
    refreshes_per_session: Limit
    password_changes_per_account: Limit
    #: Failed logins per account in a row from every address together (the long
    #: window, reset by a success); max <= MAX_CONSECUTIVE_FAILURES.
    consecutive_failures: Limit


class RateLimited(InvalidInput):
    """Over a limit. As a MutationResponse: status 429 and a field error; as a GraphQL
    error: ``extensions.code`` RATE_LIMITED and ``retryAfter`` (seconds)."""

    code = "RATE_LIMITED"

    def __init__(self, retry_after_s: int, path: str = "email") -> None:
        message = f"too many attempts, retry in {retry_after_s} seconds"
        super().__init__([FieldError(path, message)], status=429)
        self.message = message
        self.retry_after_s = retry_after_s


class RateLimiter:
    """Counts per scope and subject. Subjects (emails, addresses, ids) are hashed into
    the counter keys, so the store holds no email and no odd character."""

    def __init__(self, counters: CounterStore, clock: Clock, policy: RateLimitPolicy) -> None:
        self._counters = counters
        self._clock = clock
        self.policy = policy

    async def hit(self, scope: str, subject: str, limit: Limit, path: str = "email") -> int:
        """Count an attempt, then judge it (one atomic step: the attempt holds its place
        from now on); raises RateLimited when it is one too many. Returns the attempt's
        place in the window (0 when the limit is off): the one that is ``limit.max``
        is the last allowed. An attempt that then does no work after all may be given
        back (``give_back``)."""
        if not limit.on:
            return 0
        counter = await self._counters.increment(_key(scope, subject), limit.window_s)
        if counter.count > limit.max:
            raise self.refused(scope, counter.resets_at, path)
        return counter.count

    def refused(self, scope: str, resets_at: datetime, path: str = "email") -> RateLimited:
        """The refusal of a hit over ``scope``'s limit until ``resets_at`` (audited), for
        the limits counted here and those a store counts itself."""
        audit("rate_limited", log=False, scope=scope)
        return RateLimited(self._seconds_until(resets_at), path)

    async def give_back(self, scope: str, subject: str, limit: Limit) -> None:
        """Uncount one ``hit`` that did none of the work it was counted for (refused by
        another limit, or given up as busy before its hash ran)."""
        if limit.on:
            await self._counters.decrement(_key(scope, subject))

    async def reset(self, scope: str, subject: str) -> None:
        await self._counters.reset(_key(scope, subject))

    def _seconds_until(self, moment: datetime) -> int:
        return max(1, math.ceil((moment - self._clock()).total_seconds()))


def _key(scope: str, subject: str) -> str:
    return f"{scope}:{hashlib.sha256(subject.encode()).hexdigest()[:32]}"
