"""The command line itself: what `--help` says and how every line is printed."""

from __future__ import annotations

import subprocess

from authsvc.cli import build_parser, emit
from tests.e2e.processes import authsvc_command, child_env


def test_help_names_every_command(tmp_path):
    helped = subprocess.run(
        authsvc_command("--help"), cwd=tmp_path, env=child_env({}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert helped.returncode == 0
    description = " ".join(helped.stdout.split("\n\n")[1].split())
    commands = ["serve", "migrate", "check-config", "keys", "users", "sessions", "outbox"]
    assert description == "JWT authentication service. Commands: " + ", ".join(commands)
    # Derived from the commands: one added later is named too.
    (subcommands,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert list(subcommands.choices) == commands  # type: ignore[arg-type]


def test_every_control_character_is_escaped(capsys):
    emit("ua \x1b[2J\x1b]0;owned\x07 \x9b31m \x7f tab\tline\nnext \u202eevil \u2028 é ok")
    emit("authsvc: no user with email 'a\x1b[31m@b'", error=True)
    out, err = capsys.readouterr()
    assert out == (
        "ua \\x1b[2J\\x1b]0;owned\\x07 \\x9b31m \\x7f tab\\x09line\\x0anext \\u202eevil"
        " \\u2028 é ok\n"
    )
    assert err == "authsvc: no user with email 'a\\x1b[31m@b'\n"


def test_check_config_escapes_control_characters(tmp_path):
    checked = subprocess.run(
        authsvc_command("check-config"), cwd=tmp_path,
        env=child_env({"JWT_ISSUER": "issuer\x1b]0;pwned\x07"}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "JWT_ISSUER=issuer\\x1b]0;pwned\\x07\n" in checked.stdout
