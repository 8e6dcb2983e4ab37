"""Passwords: bcrypt hashes and checks, and the work each answer costs.

Every refused login costs one hash at BCRYPT_ROUNDS (decoys make up what a cheaper
stored hash or an unknown email would not), so response times tell nothing. The hashing
itself runs on core/hashing_pool.py's threads, admitted by core/admission.py's rule.
"""

from __future__ import annotations

import contextlib
import re

import bcrypt

from authsvc.core.admission import DEFAULT_MAX_WAIT_S, Backlog, Caller, admit_as
from authsvc.core.hashing_pool import HASHING_NICENESS, HashingPool
from authsvc.core.validation import BCRYPT_MAX_PASSWORD_BYTES

# Caller and admit_as are the HTTP edge's way in; the rule is admission.py's.
__all__ = ["HASHING_NICENESS", "Caller", "PasswordHasher", "admit_as"]

#: The costs bcrypt accepts.
MIN_ROUNDS, MAX_ROUNDS = 4, 31

#: A bcrypt hash: version, two-digit cost, 22 characters of salt and 31 of digest.
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


class PasswordHasher:
    """Hashes and checks passwords on ``threads`` threads (HashingPool). A login or
    registration is admitted by the wait ahead of it (core/admission.py): past
    ``max_wait_s`` of hash work, or ``max_pending`` requests, it is refused at once
    (Busy) rather than queued for seconds, so a flood of logins sheds load instead of
    making every login slow; refresh and `me` never wait on this pool at all."""

    def __init__(
        self,
        rounds: int,
        threads: int,
        max_pending: int | None = None,
        niceness: int = HASHING_NICENESS,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        self.rounds = rounds
        self.pool = HashingPool(rounds, threads, max_pending, niceness, max_wait_s)
        self.backlog: Backlog = self.pool.backlog
        #: A decoy per cost up to ``rounds``, made now: the first unknown email of a
        #: worker costs what every later one does (no decoy is made on first use).
        self.decoys = {cost: _decoy(cost) for cost in range(MIN_ROUNDS, rounds + 1)}

    @property
    def pending(self) -> int:
        """Requests holding a place: waiting for or being hashed, or still looking up."""
        return self.backlog.admitted

    def admitted(self) -> contextlib.AbstractContextManager[None]:
        """Hold a place for a whole login or registration (HashingPool.admitted).
        Raises Busy at once when the work ahead would take too long."""
        return self.pool.admitted()

    async def hash(self, password: str) -> str:
        """The bcrypt hash of ``password`` (at most 72 bytes: validate first)."""
        hashed = await self.pool.run(
            bcrypt.hashpw, password.encode(), bcrypt.gensalt(self.rounds), work=2**self.rounds
        )
        return hashed.decode("ascii")

    async def verify(self, password: str, hashed: str) -> bool:
        """Whether ``password`` matches ``hashed``. Costs one hash at ``hashed``'s cost
        whatever the input (at ``rounds`` for a malformed hash, which matches nothing)."""
        secret = password.encode()
        cost = self.cost_of(hashed)
        if cost is None:
            await self.burn()
            return False
        try:
            # No stored password is longer than bcrypt reads (bcrypt 5 raises on it):
            # an overlong one is hashed as far as bcrypt reads, for the same work, and
            # matches nothing.
            matched = await self.pool.run(
                bcrypt.checkpw,
                secret[:BCRYPT_MAX_PASSWORD_BYTES],
                hashed.encode("ascii"),
                work=2**cost,
                measured=cost == self.rounds,
            )
        except ValueError:  # a stored hash bcrypt cannot read matches nothing
            decoy = self._decoy_of(cost)
            await self.pool.run(
                _check_decoys, b"not the decoy", decoy, work=2**cost, measured=False
            )
            return False
        return matched and len(secret) <= BCRYPT_MAX_PASSWORD_BYTES

    def cost_of(self, hashed: str) -> int | None:
        """The bcrypt cost ``hashed`` was made with (``$2b$12$…``: the third field), or
        None for what is no bcrypt hash."""
        match = _BCRYPT_HASH.fullmatch(hashed)
        cost = int(match[1]) if match else 0
        return cost if MIN_ROUNDS <= cost <= MAX_ROUNDS else None

    def needs_rehash(self, hashed: str) -> bool:
        """Whether ``hashed`` was made with other rounds than configured now, fewer or
        more (as Django's ``must_update``): the next login makes every hash cost what
        the settings say, and an account's response times tell nothing of its past."""
        cost = self.cost_of(hashed)
        return cost is not None and cost != self.rounds

    async def burn(self, checked: str | None = None) -> None:
        """Spend what is left of one verification at ``rounds``, so that every refused
        login costs the same work and response times tell nothing: which emails have
        an account (``checked`` None: one whole verification, against a decoy), and
        which accounts have an older, cheaper hash.

        After a verification against ``checked`` of cost r below ``rounds`` R, decoys of
        costs r, r+1, …, R-1: bcrypt's work doubles with each cost, so
        2^r + (2^r + 2^(r+1) + … + 2^(R-1)) = 2^R, exactly one verification at R (Django's
        ``harden_runtime`` makes up the same gap with 2^(R-r) - 1 hashes at cost r). A
        hash of cost R or more leaves nothing to spend."""
        if checked is None:
            costs = [self.rounds]
        else:
            spent = self.cost_of(checked)
            costs = list(range(spent, self.rounds)) if spent is not None else []
        if costs:
            decoys = (self._decoy_of(cost) for cost in costs)
            work = sum(2**cost for cost in costs)
            await self.pool.run(
                _check_decoys, b"not the decoy", *decoys, work=work, measured=not checked
            )

    def _decoy_of(self, cost: int) -> bytes:
        return self.decoys.get(cost) or _decoy(cost)

    def close(self) -> None:
        self.pool.close()


def _decoy(cost: int) -> bytes:
    """A hash of cost ``cost`` of nothing anyone knows, made without hashing: bcrypt
    checks a password by hashing it with the stored salt and cost and comparing, so a
    salt and any digest cost exactly what a real hash of that cost does to check."""
    return bcrypt.gensalt(cost) + b"." * 31


def _check_decoys(secret: bytes, *decoys: bytes) -> bool:
    """Check ``secret`` against each decoy (one pool job for them all); never a match."""
    for decoy in decoys:
        bcrypt.checkpw(secret, decoy)
    return False
