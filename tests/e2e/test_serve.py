"""`authsvc serve` as a real process over real HTTP, on MariaDB + Redis in production
configuration and on the embedded default; SIGTERM stops it with exit 0."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request

from authsvc.stores.migrations import latest_version
from tests.conftest import ACCESS_SECRET, REFRESH_SECRET
from tests.e2e.processes import ServiceProcess, authsvc_command, child_env
from tests.helpers import LOGIN, LOGOUT, ME, PASSWORD, REFRESH, REGISTER, new_email


def production_env(mysql_server, redis_server, database: str | None = None) -> dict[str, str]:
    return {
        "NODE_ENV": "production",
        "DB_TYPE": "mariadb",
        "DB_HOST": mysql_server.host,
        "DB_PORT": str(mysql_server.port),
        "DB_USERNAME": mysql_server.user,
        "DB_PASSWORD": mysql_server.password,
        "DB_NAME": database or mysql_server.database,
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": redis_server.prefix,
        "JWT_ACCESS_SECRET": ACCESS_SECRET,
        "JWT_REFRESH_SECRET": REFRESH_SECRET,
        "BCRYPT_ROUNDS": "4",
    }


def migrate(cwd, env: dict[str, str]) -> None:
    """`authsvc migrate`, as a deployment runs it before serving in production."""
    result = subprocess.run(
        authsvc_command("migrate"), cwd=cwd, env=child_env(env),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def drive_the_whole_flow(service: ServiceProcess) -> list[str]:
    """register -> login -> me -> refresh -> logout -> refresh refused; returns every
    secret the flow used, which the logs must not contain."""
    email = new_email()
    status, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
    assert status == 200 and body["data"]["register"]["status"] == 201, body
    status, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
    assert body["data"]["login"]["status"] == 200, body
    tokens = json.loads(body["data"]["login"]["payload"])
    status, body = service.graphql(ME, token=tokens["access_token"])
    assert body["data"]["me"]["email"] == email
    status, body = service.graphql(REFRESH, token=tokens["refresh_token"])
    new_access = body["data"]["refresh"]
    assert service.graphql(ME, token=new_access)[1]["data"]["me"]["email"] == email
    assert service.graphql(LOGOUT, token=tokens["refresh_token"])[1] == {"data": {"logout": True}}
    status, body = service.graphql(REFRESH, token=tokens["refresh_token"])
    assert status == 200 and body["data"] is None
    assert body["errors"][0]["message"] == "Unauthorized"
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    return [PASSWORD, tokens["access_token"], tokens["refresh_token"], new_access]


def assert_clean_logs(service: ServiceProcess, secrets: list[str], requests: int = 7) -> None:
    logs = service.logs()
    for secret in [*secrets, ACCESS_SECRET, REFRESH_SECRET]:
        assert secret not in logs
    for part in (s.split(".")[1] for s in secrets if s.count(".") == 2):
        assert part not in logs  # not even the payload of a token
    access_lines = [line for line in logs.splitlines() if "authsvc.access" in line]
    assert len(access_lines) == requests  # one per request of the flow
    assert all("request_id=" in line and "duration_ms=" in line for line in access_lines)
    assert any("op=login outcome=ok" in line for line in access_lines)
    assert any("op=refresh outcome=UNAUTHENTICATED" in line for line in access_lines)


def test_production_on_mariadb_and_redis(tmp_path, mysql_server, redis_server):
    env = production_env(mysql_server, redis_server)
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        secrets = drive_the_whole_flow(service)
        # HS256 on MariaDB: nothing needs cryptography, which would cost each worker
        # about 5 MB (authsvc.optional_libraries); the JWKS endpoint answers without it.
        jwks_url = f"http://127.0.0.1:{service.port}/.well-known/jwks.json"
        with urllib.request.urlopen(jwks_url, timeout=10) as response:
            assert json.loads(response.read()) == {"keys": []}
        assert len(service.pids()) > 1 and not service.loaded("cryptography")
        assert service.loaded("pydantic_core")  # the check sees what is loaded
    finally:
        code = service.terminate()
    assert code == 0
    assert_clean_logs(service, secrets, requests=8)  # the flow's, and the JWKS request
    assert not (tmp_path / ".authsvc").exists()  # never falls back to embedded storage
    # Production logs are JSON lines; each line of a request names its request id.
    records = [json.loads(line) for line in service.logs().splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "authsvc.access"]
    audit = [r for r in records if r["logger"] == "authsvc.audit"]
    assert len(access) == 8 and all(len(r["request_id"]) == 32 for r in access)
    assert [r["event"] for r in audit] == ["registered", "login_succeeded", "logged_out"]
    assert {r["request_id"] for r in audit} <= {r["request_id"] for r in access}


def test_embedded_default(tmp_path):
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4"})
    try:
        secrets = drive_the_whole_flow(service)
    finally:
        code = service.terminate()
    assert code == 0
    assert (tmp_path / ".authsvc" / "authsvc.sqlite3").exists()
    assert_clean_logs(service, secrets)
    assert not service.logs().startswith("{")  # readable lines in development
    assert "development secrets" in service.logs()


def test_asymmetric_tokens_load_cryptography(tmp_path):
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4", "JWT_ALGORITHM": "EdDSA"})
    try:
        secrets = drive_the_whole_flow(service)
        assert service.loaded("cryptography")
    finally:
        assert service.terminate() == 0
    header = json.loads(base64.urlsafe_b64decode(secrets[1].split(".")[0] + "=="))
    assert header["alg"] == "EdDSA" and header["kid"]


def test_production_refuses_an_unmigrated_database_then_migrate_fixes_it(
    tmp_path, mysql_server, redis_server
):
    fresh = mysql_server.database + "_fresh"
    with mysql_server.connect() as conn:
        conn.cursor().execute(f"CREATE DATABASE `{fresh}`")
    try:
        env = child_env(production_env(mysql_server, redis_server, fresh))

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                authsvc_command(*args),
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )

        refused = run("serve", "--port", "1")
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            "authsvc: the database schema is at version 0, this release needs "
            f"{latest_version('mysql')}: run `authsvc migrate`"
        )
        first = run("migrate")
        assert first.returncode == 0 and "applied 0001_users" in first.stdout
        second = run("migrate")
        assert second.returncode == 0 and "database is up to date" in second.stdout
    finally:
        with mysql_server.connect() as conn:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{fresh}`")


def test_asyncio_event_loop(tmp_path):
    """uvloop is the default; asyncio's own loop stays a working choice."""
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4", "EVENT_LOOP": "asyncio"})
    try:
        drive_the_whole_flow(service)
    finally:
        assert service.terminate() == 0
    assert "loop: asyncio)" in service.logs()


def test_uvloop_is_the_default_event_loop(tmp_path):
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4"})
    try:
        assert service.graphql("{ __typename }") == (200, {"data": {"__typename": "Query"}})
    finally:
        assert service.terminate() == 0
    assert "loop: uvloop)" in service.logs()
