"""`authsvc users disable | enable` against a running server on MariaDB + Redis."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from tests.e2e.processes import ServiceProcess, authsvc_command, child_env
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import LOGIN, ME, PASSWORD, REFRESH, REGISTER, new_email


def test_disable_ends_every_session_at_once_and_enable_lets_back_in(
    tmp_path, mysql_server, redis_server
):
    env = production_env(mysql_server, redis_server)

    def users(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            authsvc_command("users", *args), cwd=tmp_path, env=child_env(env),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        email = new_email()
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        tokens = json.loads(body["data"]["login"]["payload"])

        result = users("disable", email.upper())
        assert result.returncode == 0 and result.stdout.strip() == f"disabled {email}"
        _, body = service.graphql(REFRESH, token=tokens["refresh_token"])
        assert body["errors"][0]["message"] == "Unauthorized"
        _, body = service.graphql(ME, token=tokens["access_token"])
        assert body["errors"][0]["message"] == "Unauthorized"
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        assert body["data"]["login"]["status"] == 401

        assert users("enable", email).returncode == 0
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        assert body["data"]["login"]["status"] == 200

        unknown = users("disable", "nobody@example.com")
        assert unknown.returncode == 2
        assert unknown.stderr.strip().splitlines()[-1] == (
            "authsvc: no user with email 'nobody@example.com'"
        )
    finally:
        assert service.terminate() == 0


def test_disable_wins_against_a_login_in_flight(tmp_path, mysql_server, redis_server):
    """`authsvc users disable` while a login is still hashing the password: the login
    must not leave a session behind (it did: made after disable had ended the others,
    it kept refreshing)."""
    # A hash the server's check will take seconds over: longer than the CLI's run. The
    # wait bound is raised so that the server does not give the slow hash up as busy.
    env = production_env(mysql_server, redis_server) | {"HASH_QUEUE_MAX_WAIT_S": "60"}
    with ThreadPoolExecutor(1) as hashing:  # made while the service starts (bcrypt frees the GIL)
        slow = hashing.submit(bcrypt.hashpw, PASSWORD.encode(), bcrypt.gensalt(16))
        migrate(tmp_path, env)
        service = ServiceProcess(tmp_path, env)
    try:
        slow_hash = slow.result().decode()
        email = new_email()
        _, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        user_id = json.loads(body["data"]["register"]["payload"])["id"]
        with mysql_server.connect(mysql_server.database) as conn, conn.cursor() as cursor:
            cursor.execute(
                "UPDATE users SET password_hash = %s WHERE id = %s", (slow_hash, user_id)
            )
        with ThreadPoolExecutor(1) as pool:
            login = pool.submit(service.graphql, LOGIN, {"email": email, "password": PASSWORD})
            time.sleep(0.3)
            assert not login.done(), "the login ended before disable began"
            disabled = subprocess.run(
                authsvc_command("users", "disable", email), cwd=tmp_path, env=child_env(env),
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert disabled.returncode == 0, disabled.stderr
            assert not login.done(), "the login ended before disable did"
            _, body = login.result(timeout=60)
        result = body["data"]["login"]
        if result["status"] == 200:  # a session was made: it must be dead
            tokens = json.loads(result["payload"])
            _, body = service.graphql(REFRESH, token=tokens["refresh_token"])
            assert body.get("data") is None, "the late session still refreshes"
            _, body = service.graphql(ME, token=tokens["access_token"])
            assert body.get("data") is None, "the late session still answers me"
        assert result["errors"] == [{"path": "email", "message": "invalid login"}]
    finally:
        assert service.terminate() == 0


def test_admin_commands_on_the_embedded_store(tmp_path):
    env = {"BCRYPT_ROUNDS": "4"}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            authsvc_command(*args), cwd=tmp_path, env=child_env(env), input=stdin,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    email = new_email()
    created = cli("users", "create", email, "--password-stdin", stdin=PASSWORD + "\n")
    assert created.returncode == 0 and created.stdout.startswith(f"created {email} (")
    short = cli("users", "create", new_email(), "--password-stdin", stdin="short\n")
    assert short.returncode == 2
    assert short.stderr.strip().splitlines()[-1] == (
        "authsvc: password: password must be at least 8 characters"
    )
    assert PASSWORD not in created.stdout + created.stderr
    listed = cli("users", "list")
    assert email in listed.stdout

    service = ServiceProcess(tmp_path, env)
    try:
        for _ in range(2):
            _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
            assert body["data"]["login"]["status"] == 200
        sessions = cli("sessions", "list", email)
        assert sessions.stdout.strip().splitlines()[-1] == f"2 live sessions of {email}"
        first_session = sessions.stdout.split()[0]
        assert cli("sessions", "revoke", email, first_session).stdout.strip() == "ended 1 sessions"
        assert cli("sessions", "revoke", email, "--all").stdout.strip() == "ended 1 sessions"
        assert cli("sessions", "list", email).stdout.strip() == f"0 live sessions of {email}"
        deleted = cli("users", "delete", email)
        assert deleted.returncode == 0 and deleted.stdout.startswith(f"deleted {email}")
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        assert body["data"]["login"]["status"] == 401
    finally:
        assert service.terminate() == 0
    for command in (("users", "delete", email), ("sessions", "list", email)):
        unknown = cli(*command)
        assert unknown.returncode == 2
        assert unknown.stderr.strip().splitlines()[-1] == f"authsvc: no user with email '{email}'"


def test_confirm_lets_an_unconfirmed_account_log_in(tmp_path):
    """`authsvc users confirm`: for an account whose confirmation mail never came (in
    development without SMTP_URL it went to the log)."""
    env = {"BCRYPT_ROUNDS": "4", "EMAIL_CONFIRMATION": "true"}

    def users(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            authsvc_command("users", *args), cwd=tmp_path, env=child_env(env),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    service = ServiceProcess(tmp_path, env)
    try:
        email = new_email()
        _, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        assert json.loads(body["data"]["register"]["payload"])["confirmed"] is False
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        assert body["data"]["login"]["status"] == 401

        confirmed = users("confirm", email.upper())
        assert confirmed.returncode == 0, confirmed.stderr
        assert confirmed.stdout.strip() == f"confirmed {email}"
        assert "event=email_confirmed" in confirmed.stdout + confirmed.stderr
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        assert body["data"]["login"]["status"] == 200
        listed = users("list")
        assert next(line for line in listed.stdout.splitlines() if email in line).endswith("  -")

        again = users("confirm", email)
        assert again.returncode == 0 and again.stdout.strip() == f"{email} was confirmed already"
        unknown = users("confirm", "nobody@example.com")
        assert unknown.returncode == 2
        assert unknown.stderr.strip().splitlines()[-1] == (
            "authsvc: no user with email 'nobody@example.com'"
        )
    finally:
        assert service.terminate() == 0
