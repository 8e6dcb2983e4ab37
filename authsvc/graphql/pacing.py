"""Clients that ask again too soon: refusals that cost them more than they cost us.

A busy or rate-limited answer costs a worker about half a millisecond. A client that
ignores its Retry-After and asks again at once got 1,850 of them a second from two
workers, which kept the event loops busy and left password hashing no core: no login
succeeded. So each connection, and each client address, keeps the moment it may ask
for hashing again: the end of the Retry-After it was last given, or a second after its
last login or registration was answered. A request is judged by its connection's
record, or, on a connection that has none yet (a new one, or one behind a trusted
proxy, whose connections carry many clients), by its address's. One that comes sooner:

- is admitted only while the hashing ahead of it would take half the wait bound
  (HASH_QUEUE_MAX_WAIT_S), and waits for a thread after the others (core/admission.py),
  so a flood cannot take every place the moment it frees;
- if refused, has its answer held until that moment (at most REFUSAL_HOLD_MAX_S), so
  that a client which never waits sends one request per Retry-After, not thousands,
  whether it keeps its connection or opens a new one each time (any refusal, to anyone,
  is held FIRST_HOLD_S, so that many new clients at once cannot spin either);
- after REFUSALS_IGNORED_MAX such refusals in a row on one connection, is answered and
  the connection closed (never a proxy's: it carries other clients).

A client that waits as told is held only FIRST_HOLD_S, and a request that asks for no
hashing (refresh, `me`) never. Held answers are bounded per worker (REFUSALS_HELD_MAX): past it, the
refusal is answered at once and the connection closed, so holding costs bounded memory.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable

from authsvc.core.passwords import Caller

#: How long after a login or registration is answered another one from the same
#: client counts as "too soon": the least Retry-After a busy answer gives. Without it,
#: a connection whose login succeeded asks again the instant its place frees and keeps
#: that place for ever, however many clients wait their turn.
PACE_S = 1.0
#: How long any refusal is held, whoever asked (see Pacing.answered).
FIRST_HOLD_S = 0.5
#: Timers fire late, never early; this covers a client's clock rounding.
SLACK_S = 0.1
#: Client addresses remembered (the least recently seen forgotten first).
MAX_ADDRESSES = 10_000


class _Record:
    __slots__ = ("calm_at", "ignored")

    def __init__(self) -> None:
        self.calm_at = 0.0  # monotonic time before which asking again is too soon
        self.ignored = 0  # refusals in a row it asked too soon for


class Pacing:
    """One per worker: the records of its clients and its held answers. A request is
    known by ``connection`` (its TCP connection; None behind a proxy) and ``address``
    (the client's, as resolved through trusted proxies)."""

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
        self.held = 0

    def caller(self, connection: object | None, address: str) -> Caller:
        """The caller of a request arriving now."""
        record = self._judging(connection, address)
        return Caller(record is not None and self._clock() < record.calm_at - SLACK_S)

    async def answered(
        self, connection: object | None, address: str, caller: Caller, retry_after_s: int | None
    ) -> bool:
        """Record the answer about to be sent to ``caller``, which asked for hashing:
        a refusal when ``retry_after_s`` is set. A refusal that came too soon is held
        first. Returns whether to close the connection after the answer."""
        judging = self._judging(connection, address)
        close = False
        if retry_after_s is not None:
            own = self._own(connection, address)
            # Every refusal is held a little, a first one too: a flood from addresses
            # never seen before (many clients behind a trusted proxy) is never "too
            # soon", and answered at once it kept the loops busy and hashing (at a lower
            # priority) got no core. Held, each connection asks at most 1/FIRST_HOLD_S
            # times a second; a client that waits as told waits a little longer.
            hold_s = min(FIRST_HOLD_S, self._hold_max_s)
            if not caller.too_soon:
                own.ignored = 0
            else:
                own.ignored += 1
                until_calm_s = (judging.calm_at if judging else 0.0) - self._clock()
                hold_s = max(hold_s, min(until_calm_s, self._hold_max_s))
            if caller.too_soon and connection is not None and own.ignored >= self._ignored_max:
                close = True
            elif hold_s > 0 and self.held >= self._held_max:
                close = connection is not None
            elif hold_s > 0:
                self.held += 1
                try:
                    await asyncio.sleep(hold_s)
                finally:
                    self.held -= 1
        calm_at = self._clock() + (PACE_S if retry_after_s is None else retry_after_s)
        self._own(connection, address).calm_at = calm_at
        if connection is not None:
            self._address(address).calm_at = calm_at
        return close

    def _judging(self, connection: object | None, address: str) -> _Record | None:
        """The record a request is judged by: its connection's, else its address's."""
        if connection is not None:
            found = self._connections.get(connection)
            if found is not None:
                return found
        return self._addresses.get(address)

    def _own(self, connection: object | None, address: str) -> _Record:
        """The record that counts what this client does: its connection's (made now if
        need be), or behind a proxy its address's."""
        if connection is None:
            return self._address(address)
        found = self._connections.get(connection)
        if found is None:
            found = self._connections[connection] = _Record()
        return found

    def _address(self, address: str) -> _Record:
        record = self._addresses.pop(address, None) or _Record()
        self._addresses[address] = record  # the most recently seen last
        if len(self._addresses) > MAX_ADDRESSES:
            self._addresses.popitem(last=False)
        return record
