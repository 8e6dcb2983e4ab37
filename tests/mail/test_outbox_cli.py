"""`authsvc outbox list | retry | purge-dead` on the embedded store, as an operator runs
them: never a mail's body (it carries a token link) in what they print."""

from __future__ import annotations

import asyncio
import subprocess

from authsvc.services import open_services
from authsvc.settings import load_settings
from tests.e2e.processes import authsvc_command, child_env
from tests.helpers import new_email


def outbox_command(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    env = child_env({"SQLITE_PATH": str(tmp_path / "authsvc.sqlite3"),
                     "JWT_KEYS_DIR": str(tmp_path / "keys")})  # fmt: skip
    return subprocess.run(authsvc_command("outbox", *args), cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def prepare(tmp_path) -> tuple[str, str, str]:
    """One sent, one dead, one queued mail; returns their ids."""
    settings = load_settings(None, sqlite_path=str(tmp_path / "authsvc.sqlite3"),
                             jwt_keys_dir=str(tmp_path / "keys"))  # fmt: skip

    async def run() -> tuple[str, str, str]:
        services = await open_services(settings)
        try:
            mailer, outbox = services.mailer, services.outbox
            ids = [await mailer.send("reset_password", new_email(),
                                     link="https://x.example/r?token=secret-token")
                   for _ in range(3)]  # fmt: skip
            claims = {c.id: c for c in await outbox.claim("email", 10, 60)}
            assert await outbox.mark_sent(claims[ids[0]])
            assert await outbox.mark_dead(claims[ids[1]], "550 5.1.1 no such user")
            assert await outbox.retry_later(claims[ids[2]], 3600, "451 4.3.0 try later")
            return ids[0], ids[1], ids[2]
        finally:
            await services.close()

    return asyncio.run(run())


def test_list_retry_and_purge_the_dead(tmp_path):
    sent, dead, queued = prepare(tmp_path)
    listing = outbox_command(tmp_path, "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[-1] == "3 messages"
    by_id = {line.split()[0]: line for line in lines[:-1]}
    assert "reset_password  sent  attempts 1" in by_id[sent]
    assert "dead  attempts 1" in by_id[dead] and "550 5.1.1 no such user" in by_id[dead]
    assert "queued  attempts 1" in by_id[queued] and "451 4.3.0" in by_id[queued]
    assert "secret-token" not in listing.stdout + listing.stderr

    only_dead = outbox_command(tmp_path, "list", "--state", "dead")
    assert only_dead.stdout.splitlines()[0].split()[0] == dead

    retried = outbox_command(tmp_path, "retry", dead)
    assert retried.returncode == 0 and retried.stdout.strip() == f"queued {dead} again"
    after = {
        line.split()[0]: line for line in outbox_command(tmp_path, "list").stdout.splitlines()[:-1]
    }
    assert "queued  attempts 0" in after[dead]
    assert outbox_command(tmp_path, "retry", sent).returncode == 2  # sent is sent

    prepare_dead_again = outbox_command(tmp_path, "retry", "--dead")
    assert prepare_dead_again.stdout.strip() == "queued 0 dead messages again"
    purged = outbox_command(tmp_path, "purge-dead")
    assert purged.returncode == 0 and purged.stdout.strip() == "deleted 0 dead messages"
