"""`authsvc migrate` over a MariaDB that an older release filled: emails take the
normalized form, colliding rows are kept and reported, and every spelling logs in."""

from __future__ import annotations

import subprocess
import unicodedata
import uuid
from datetime import UTC, datetime

import bcrypt

from tests.e2e.processes import ServiceProcess, authsvc_command, child_env
from tests.e2e.test_serve import production_env
from tests.helpers import LOGIN, PASSWORD


def test_migrate_normalizes_old_rows_and_reports_collisions(tmp_path, mysql_server, redis_server):
    database = f"{mysql_server.database}_r{uuid.uuid4().hex[:6]}"
    with mysql_server.connect() as conn:
        conn.cursor().execute(f"CREATE DATABASE `{database}`")
    env = production_env(mysql_server, redis_server, database)

    def migrate() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            authsvc_command("migrate"), cwd=tmp_path, env=child_env(env),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    try:
        assert migrate().returncode == 0
        tag = uuid.uuid4().hex[:8]
        nfc = f"ren\u00e9-{tag}@example.com"
        rows = {  # id -> email as an older release stored it (trimmed, lower-cased)
            "00000000-0000-4000-8000-000000000001": f"hans-{tag}@xn--bcher-kva.de",
            "00000000-0000-4000-8000-000000000002": nfc,
            "00000000-0000-4000-8000-000000000003": unicodedata.normalize("NFD", nfc),
        }
        password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
        now = datetime.now(UTC).replace(tzinfo=None)
        with mysql_server.connect(database) as conn:
            cur = conn.cursor()
            for user_id, email in rows.items():
                cur.execute(
                    "INSERT INTO users (id, email, password_hash, confirmed, disabled,"
                    " created_at, updated_at) VALUES (%s, %s, %s, 1, 0, %s, %s)",
                    (user_id, email, password_hash, now, now),
                )
            # The schema as it was before this release: the data step is pending.
            cur.execute("DELETE FROM schema_migrations WHERE version = 2")

        result = migrate()

        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "applied 0002_normalize_emails"
        assert lines[1] == "  1 emails normalized, 1 collisions left unchanged"
        assert lines[2].startswith(f"  collision: 'ren\\xe9-{tag}@example.com' is held by")
        assert "(id 00000000-0000-4000-8000-000000000002)" in lines[2]
        assert lines[2].endswith(
            f"'rene\\u0301-{tag}@example.com' (id 00000000-0000-4000-8000-000000000003)"
        )
        with mysql_server.connect(database) as conn:
            cur = conn.cursor()
            cur.execute("SELECT id, email FROM users ORDER BY id")
            stored = dict(cur.fetchall())
        assert stored == rows | {
            "00000000-0000-4000-8000-000000000001": f"hans-{tag}@b\u00fccher.de"
        }

        service = ServiceProcess(tmp_path, env)
        try:
            for email in (f"hans-{tag}@xn--bcher-kva.de", f"HANS-{tag}@B\u00dcCHER.DE", nfc):
                _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
                assert body["data"]["login"]["status"] == 200, email
        finally:
            assert service.terminate() == 0
    finally:
        with mysql_server.connect() as conn:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
