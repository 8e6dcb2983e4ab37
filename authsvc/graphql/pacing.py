"""Clients that ask again too soon: refusals that cost them more than they cost us.

A busy or rate-limited answer costs a worker about half a millisecond. A client that
ignores its Retry-After and asks again at once got 1,850 of them a second from two
workers, which kept the event loops busy and left password hashing no core: no login
succeeded. So each connection (behind a trusted proxy, each client address, since the
proxy's connections carry many clients) keeps the moment it may ask for hashing again:
the end of the Retry-After it was given, or a second after its last login or
registration was answered. A request that comes sooner:

- is admitted into half the hashing backlog only (core/passwords.py), so the other half
  stays for clients that wait as told, whatever a flood takes;
- if refused, has its answer held until that moment (at most REFUSAL_HOLD_MAX_S), so
  that a connection which never waits sends one request per Retry-After, not thousands;
- after REFUSALS_IGNORED_MAX such refusals in a row, is answered and its connection
  closed; for a minute, a new connection from that address starts as "too soon" (else
  each reconnection would buy the flood a place kept for clients that wait).

A client that waits as told is never held, nor is a request that asks for no hashing
(refresh, `me`). Held answers are bounded per worker (REFUSALS_HELD_MAX): past it, the
refusal is answered at once and the connection closed, so holding costs bounded memory.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

from authsvc.core.passwords import Caller

T = TypeVar("T")

#: How long after a login or registration is answered another one from the same
#: client counts as "too soon": the least Retry-After a busy answer gives. Without it,
#: a connection whose login succeeded asks again the instant its place frees and keeps
#: that place for ever, however many clients wait their turn.
PACE_S = 1.0
#: Timers fire late, never early; this covers a client's clock rounding.
SLACK_S = 0.1
#: Client addresses remembered (the least recently seen forgotten first).
MAX_ADDRESSES = 10_000
#: How long a new connection from an address whose connection was closed for ignoring
#: Retry-After starts as "too soon".
CLOSED_MEMORY_S = 60.0


class _Record:
    __slots__ = ("calm_at", "ignored")

    def __init__(self) -> None:
        self.calm_at = 0.0  # monotonic time before which asking again is too soon
        self.ignored = 0  # refusals in a row it asked too soon for


class Pacing:
    """One per worker: the records of its clients and its held answers."""

    def __init__(
        self,
        hold_max_s: float,
        held_max: int,
        ignored_max: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._hold_max_s = hold_max_s
        self._held_max = held_max
        self._ignored_max = ignored_max
        self._clock = clock
        self._connections: weakref.WeakKeyDictionary[object, _Record] = weakref.WeakKeyDictionary()
        self._addresses: OrderedDict[str, _Record] = OrderedDict()
        self._closed: OrderedDict[str, float] = OrderedDict()  # address -> remembered until
        self.held = 0

    def caller(self, key: object, address: str) -> Caller:
        """The caller of a request arriving now from ``key`` (a connection object, or a
        client address string behind a proxy) and client ``address``."""
        now = self._clock()
        record = self._find(key)
        if record is None:
            return Caller(self._closed.get(address, 0.0) > now)
        return Caller(now < record.calm_at - SLACK_S)

    async def answered(
        self, key: object, address: str, caller: Caller, retry_after_s: int | None
    ) -> bool:
        """Record the answer about to be sent to ``caller``, which asked for hashing:
        a refusal when ``retry_after_s`` is set. A refusal that came too soon is held
        first. Returns whether to close the connection after the answer."""
        record = self._record(key)
        close = False
        if retry_after_s is None:
            record.calm_at = self._clock() + PACE_S
            return False
        if not caller.too_soon:
            record.ignored = 0
        else:
            record.ignored += 1
            on_connection = not isinstance(key, str)
            hold_s = min(record.calm_at - self._clock(), self._hold_max_s)
            if on_connection and record.ignored >= self._ignored_max:
                close = True
            elif hold_s > 0 and self.held >= self._held_max:
                close = on_connection
            elif hold_s > 0:
                self.held += 1
                try:
                    await asyncio.sleep(hold_s)
                finally:
                    self.held -= 1
        record.calm_at = self._clock() + retry_after_s
        if close:
            self._remember(self._closed, address, record.calm_at + CLOSED_MEMORY_S)
        return close

    def _find(self, key: object) -> _Record | None:
        if isinstance(key, str):
            return self._addresses.get(key)
        return self._connections.get(key)

    def _record(self, key: object) -> _Record:
        if isinstance(key, str):
            return self._remember(self._addresses, key, self._addresses.get(key) or _Record())
        found = self._connections.get(key)
        if found is None:
            found = self._connections[key] = _Record()
        return found

    @staticmethod
    def _remember(memory: OrderedDict[str, T], address: str, value: T) -> T:
        memory.pop(address, None)
        memory[address] = value  # the most recently seen last
        if len(memory) > MAX_ADDRESSES:
            memory.popitem(last=False)
        return value
