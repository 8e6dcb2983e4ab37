"""Versioned schema migrations: ``sql/<dialect>/NNNN_name.sql``, applied in order once.

Each adapter applies them with its own driver and records every applied version in a
``schema_migrations`` table; this module finds them and says which are pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

Dialect = Literal["mysql", "sqlite"]


class MigrationsPending(Exception):
    """The database is behind the code: run ``authsvc migrate``."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def load_migrations(dialect: Dialect) -> list[Migration]:
    """Every migration of ``dialect``, oldest first, from the installed package."""
    folder = files("authsvc.stores") / "sql" / dialect
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version, _, name = entry.name.removesuffix(".sql").partition("_")
        # The files hold DDL only, with no ';' inside a statement or comment, so a plain
        # split is exact.
        statements = tuple(s.strip() for s in entry.read_text().split(";") if s.strip())
        found.append(Migration(int(version), name, statements))
    return sorted(found, key=lambda m: m.version)


def pending(dialect: Dialect, applied: set[int]) -> list[Migration]:
    return [m for m in load_migrations(dialect) if m.version not in applied]


def latest_version(dialect: Dialect) -> int:
    return max((m.version for m in load_migrations(dialect)), default=0)
