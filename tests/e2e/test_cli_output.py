"""What the admin CLI prints of the clients' text (user agents, emails) is escaped."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.request

from tests.e2e.processes import ServiceProcess, authsvc_command, child_env
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email


def test_admin_output_escapes_control_characters(tmp_path):
    env = {"BCRYPT_ROUNDS": "4"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            authsvc_command(*args), cwd=tmp_path, env=child_env(env),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    email = new_email()
    service = ServiceProcess(tmp_path, env)
    try:
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        # HTTP lets C1 through (Tornado refuses C0 and DEL in headers): CSI (0x9b) starts
        # an escape sequence on terminals that read 8-bit controls; NEL (0x85) a line.
        agent = "evil\x9b2J\x9b31mred\x85fake line"
        body = json.dumps({"query": LOGIN, "variables": {"email": email, "password": PASSWORD}})
        request = urllib.request.Request(
            service.url, data=body.encode("latin-1"), method="POST",
            headers={"Content-Type": "application/json", "User-Agent": agent},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["data"]["login"]["status"] == 200
    finally:
        assert service.terminate() == 0
    listed = cli("sessions", "list", email)
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].endswith("  evil\\x9b2J\\x9b31mred\\x85fake line")

    # C0 in a row an older release (or a hand) wrote: the listing escapes it too.
    with sqlite3.connect(tmp_path / ".authsvc" / "authsvc.sqlite3") as db:
        db.execute("UPDATE users SET email = ? WHERE email = ?", ("a\x1b]0;pwned\x07@x", email))
    listed = cli("users", "list")
    assert "  a\\x1b]0;pwned\\x07@x  " in listed.stdout
    for output in (listed.stdout, cli("sessions", "list", "a\x1b[2J@x").stderr):
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in output if c != "\n")
