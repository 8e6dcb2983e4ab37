"""The migration that brings stored emails to the one normalized form, on MariaDB and
SQLite, over rows that older releases wrote (non-normalized, some colliding)."""

from __future__ import annotations

import types
import unicodedata
import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from authsvc.core.validation import normalize_email
from authsvc.services import mysql_config
from authsvc.stores import migrations, mysql, sqlite
from authsvc.stores.migrations import load_migrations
from authsvc.stores.sql import SQLUserStore
from tests.conftest import settings_for
from tests.stores.test_user_store_contract import make_user

NFC = "jos\u00e9@example.com"
NFD = unicodedata.normalize("NFD", NFC)


@pytest.fixture(params=["mysql", "sqlite"])
def migrated(request, io_loop, mysql_server, redis_server, tmp_path, monkeypatch):
    """(user store, a function that runs the email migration again) on a database of
    its own: the migration sees only the rows of the test, two a page (so that the
    paging is crossed)."""
    monkeypatch.setattr(migrations, "SCAN_PAGE", 2)
    module: types.ModuleType
    store: SQLUserStore
    if request.param == "mysql":
        database = f"{mysql_server.database}_m{uuid.uuid4().hex[:6]}"
        with mysql_server.connect() as conn:
            conn.cursor().execute(f"CREATE DATABASE `{database}`")
        settings = settings_for("servers", mysql_server, redis_server, tmp_path, db_name=database)
        db = io_loop.run_sync(lambda: mysql.MySQLPool.open(mysql_config(settings)))
        module, store = mysql, mysql.MySQLUserStore(db)
    else:
        db = io_loop.run_sync(lambda: sqlite.SQLiteDatabase.open(str(tmp_path / "m.db"), 3.0))
        module, store = sqlite, sqlite.SQLiteUserStore(db)
    io_loop.run_sync(lambda: module.migrate(db, email_rule=normalize_email))
    (version,) = [m.version for m in load_migrations(request.param) if m.name == "normalize_emails"]
    mark = "%s" if request.param == "mysql" else "?"

    async def again():
        # As if the rows had been written before this release: the step is pending.
        await db.execute(f"DELETE FROM schema_migrations WHERE version = {mark}", (version,))  # noqa: S608
        applied = await module.migrate(db, email_rule=normalize_email)
        assert [a.migration.name for a in applied] == ["normalize_emails"]
        return applied[0].report

    yield store, again
    io_loop.run_sync(db.close)
    if request.param == "mysql":
        with mysql_server.connect() as conn:
            conn.cursor().execute(f"DROP DATABASE `{database}`")


async def test_old_rows_take_the_normalized_form(migrated):
    store, again = migrated
    plain = make_user("plain@example.com")
    unicode_domain = make_user("hans@xn--bcher-kva.de")
    decomposed = make_user(NFD)
    shouting = make_user("Old@Example.COM")  # before the Node service lower-cased?
    not_an_email = make_user("root@localhost")  # the rule refuses it: kept as it is
    for user in (plain, unicode_domain, decomposed, shouting, not_an_email):
        await store.create(user)

    report = await again()

    assert report.summary == "3 emails normalized, 0 collisions left unchanged"
    assert report.problems == ()
    for user, email in (
        (plain, "plain@example.com"),
        (unicode_domain, "hans@b\u00fccher.de"),
        (decomposed, NFC),
        (shouting, "old@example.com"),
        (not_an_email, "root@localhost"),
    ):
        stored = await store.get(user.id)
        assert stored == replace(user, email=email)  # nothing else changed
    # Run again, nothing is left to do.
    assert (await again()).summary == "0 emails normalized, 0 collisions left unchanged"


async def test_colliding_rows_are_all_kept_and_reported(migrated):
    store, again = migrated
    # A pair where one row holds the form already: the other stays as it was.
    holder, twin = make_user(NFC), make_user(NFD)
    # A pair where neither does: the older takes the form, the younger stays.
    older = make_user("zo\u00eb@xn--bcher-kva.de")
    younger = replace(
        make_user(unicodedata.normalize("NFD", "zo\u00eb@b\u00fccher.de")),
        created_at=older.created_at + timedelta(days=1),
    )
    for user in (holder, twin, younger, older):
        await store.create(user)

    report = await again()

    assert report.summary == "1 emails normalized, 2 collisions left unchanged"
    assert await store.get(holder.id) == holder
    assert await store.get(twin.id) == twin
    assert await store.get(older.id) == replace(older, email="zo\u00eb@b\u00fccher.de")
    assert await store.get(younger.id) == younger
    first, second = sorted(report.problems)
    assert first == (
        "collision: 'jos\\xe9@example.com' is held by 'jos\\xe9@example.com' "
        f"(id {holder.id}); left unchanged, so their owners cannot log in until each "
        f"is renamed or deleted: 'jose\\u0301@example.com' (id {twin.id})"
    )
    assert second == (
        "collision: 'zo\\xeb@b\\xfccher.de' is held by 'zo\\xeb@b\\xfccher.de' "
        f"(id {older.id}); left unchanged, so their owners cannot log in until each "
        f"is renamed or deleted: 'zoe\\u0308@bu\\u0308cher.de' (id {younger.id})"
    )
