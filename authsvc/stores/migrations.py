"""Versioned schema migrations: ``sql/<dialect>/NNNN_name.sql``, applied in order once.

Each adapter applies them with its own driver and records every applied version in a
``schema_migrations`` table; this module finds them and says which are pending. A
migration whose work SQL cannot do (a rule in Python) names a data step of
``DATA_STEPS`` by its file name; its file holds comments only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Literal, Protocol

from authsvc.stores.base import UniqueViolation

Dialect = Literal["mysql", "sqlite"]
#: The core's normalize_email, handed down (stores import nothing of the core).
EmailRule = Callable[[str], str]


class MigrationsPending(Exception):
    """The database is behind the code: run ``authsvc migrate``."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StepReport:
    """What a data step did (one line) and what it left for a person to decide."""

    summary: str
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Applied:
    """A migration just applied, with its data step's report if it has one."""

    migration: Migration
    report: StepReport | None = None


class MigrationDatabase(Protocol):
    """The statements of a migration run: an adapter's migrating connection.
    ``execute`` raises UniqueViolation for a unique index."""

    async def fetchall(self, sql: str, args: Sequence[Any] = ()) -> Sequence[Sequence[Any]]: ...

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int: ...


def load_migrations(dialect: Dialect) -> list[Migration]:
    """Every migration of ``dialect``, oldest first, from the installed package."""
    folder = files("authsvc.stores") / "sql" / dialect
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version, _, name = entry.name.removesuffix(".sql").partition("_")
        # The files hold DDL only, with no ';' inside a statement or comment, so a plain
        # split is exact. A part of comments only is no statement (a data step's file).
        statements = tuple(
            part.strip() for part in entry.read_text().split(";") if not _only_comments(part)
        )
        found.append(Migration(int(version), name, statements))
    return sorted(found, key=lambda m: m.version)


def pending(dialect: Dialect, applied: set[int]) -> list[Migration]:
    return [m for m in load_migrations(dialect) if m.version not in applied]


def latest_version(dialect: Dialect) -> int:
    return max((m.version for m in load_migrations(dialect)), default=0)


def _only_comments(part: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in part.splitlines())


#: Rows read at a time by a data step: memory stays bounded on a large table.
SCAN_PAGE = 1000


async def normalize_emails(db: MigrationDatabase, mark: str, rule: EmailRule) -> StepReport:
    """Rewrite every email to ``rule``'s form; returns the report for the operator.

    Emails that only the new rule makes equal (NFC and NFD, a domain in Unicode and in
    punycode) cannot all take the one form under the unique index, and which account is
    whose is for a person to decide: every row is kept. When a row holds the form
    already, the others stay as they are; when none does, the oldest takes it (the row
    that the unique index would have kept at registration), so that its owner logs in
    with any spelling. Each group left so is reported, rows by id.
    """
    # Only rows whose email changes can collide: two rows already in the new form are
    # kept apart by the unique index. So memory grows with those, not with the table.
    changing: dict[str, list[tuple[Any, str, str]]] = {}  # form -> (created_at, id, email)
    page = (
        f"SELECT id, email, created_at FROM users WHERE id > {mark}"  # noqa: S608
        f" ORDER BY id LIMIT {SCAN_PAGE}"
    )
    rows = await db.fetchall(page, ("",))
    while rows:
        for user_id, email, created_at in rows:
            if (form := rule(email)) != email:
                changing.setdefault(form, []).append((created_at, user_id, email))
        rows = await db.fetchall(page, (rows[-1][0],))
    holders_of = f"SELECT id, email FROM users WHERE email = {mark}"  # noqa: S608
    move = f"UPDATE users SET email = {mark} WHERE id = {mark}"  # noqa: S608
    collisions: list[str] = []
    moved = 0
    for form, group in changing.items():
        group.sort()
        left = group
        if not await db.fetchall(holders_of, (form,)):
            try:
                await db.execute(move, (form, group[0][1]))
            except UniqueViolation:  # a registration took the form meanwhile
                pass
            else:
                moved += 1
                left = group[1:]
        if left:  # !a (ascii): NFC and NFD, or look-alike letters, differ visibly in it
            holders = await db.fetchall(holders_of, (form,))
            collisions.append(
                f"collision: {form!a} is held by "
                + ", ".join(f"{email!a} (id {user_id})" for user_id, email in holders)
                + "; left unchanged, so their owners cannot log in until each is renamed"
                " or deleted: "
                + ", ".join(f"{email!a} (id {user_id})" for _, user_id, email in left)
            )
    summary = f"{moved} emails normalized, {len(collisions)} collisions left unchanged"
    return StepReport(summary, tuple(collisions))


#: Data steps by migration name: run after the migration's statements, in its turn.
DataStep = Callable[[MigrationDatabase, str, EmailRule], Awaitable[StepReport]]
DATA_STEPS: dict[str, DataStep] = {"normalize_emails": normalize_emails}


async def apply(db: MigrationDatabase, migration: Migration, mark: str, rule: EmailRule) -> Applied:
    """Run one migration's statements, then its data step if it has one."""
    for statement in migration.statements:
        await db.execute(statement)
    step = DATA_STEPS.get(migration.name)
    return Applied(migration, await step(db, mark, rule) if step else None)
