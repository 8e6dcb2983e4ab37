"""`authsvc users disable | enable` against a running server on MariaDB + Redis."""

from __future__ import annotations

import json
import subprocess

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
