"""Fixtures of the core tests: the bcrypt work a call does, counted."""

from __future__ import annotations

import bcrypt
import pytest


def cost_of(hashed: bytes) -> int:
    return int(hashed.split(b"$")[2])


@pytest.fixture
def bcrypt_work(monkeypatch):
    """Every bcrypt call from now on, as (function, cost); the real functions run. The
    work of a call is 2**cost (bcrypt's work doubles with each cost)."""
    calls: list[tuple[str, int]] = []
    real_checkpw, real_hashpw = bcrypt.checkpw, bcrypt.hashpw

    def checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(("checkpw", cost_of(hashed)))
        return real_checkpw(password, hashed)

    def hashpw(password: bytes, salt: bytes) -> bytes:
        calls.append(("hashpw", cost_of(salt)))
        return real_hashpw(password, salt)

    monkeypatch.setattr(bcrypt, "checkpw", checkpw)
    monkeypatch.setattr(bcrypt, "hashpw", hashpw)
    return calls


def work(calls: list[tuple[str, int]]) -> int:
    return sum(2**cost for _, cost in calls)
