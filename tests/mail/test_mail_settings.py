"""The mail settings: one clear line for what cannot run, never the SMTP password."""

from __future__ import annotations

import logging

import pytest

from authsvc.mail.senders import LogSender
from authsvc.settings import ConfigError, load_settings
from tests.conftest import ACCESS_SECRET, REFRESH_SECRET

PRODUCTION = {
    "node_env": "production",
    "jwt_access_secret": ACCESS_SECRET.replace("test-", "prod-"),
    "jwt_refresh_secret": REFRESH_SECRET.replace("test-", "prod-"),
    "db_type": "mariadb",
    "db_host": "db",
    "db_name": "authsvc",
    "db_username": "authsvc",
    "redis_host": "redis",
}


def test_production_with_email_confirmation_needs_smtp_url():
    with pytest.raises(ConfigError) as refused:
        load_settings(None, **PRODUCTION, email_confirmation=True)
    assert str(refused.value).startswith("SMTP_URL is required in production when "
                                         "EMAIL_CONFIRMATION=true")  # fmt: skip
    assert "\n" not in str(refused.value)
    load_settings(None, **PRODUCTION, email_confirmation=True, smtp_url="smtp://mx:25",
                  public_url="https://auth.example.com")  # fmt: skip
    load_settings(None, **PRODUCTION)  # no confirmation: mail is optional


def test_production_with_smtp_url_needs_the_public_url_of_the_links():
    with pytest.raises(ConfigError) as refused:
        load_settings(None, **PRODUCTION, smtp_url="smtp://mx:25")
    assert str(refused.value).startswith("PUBLIC_URL (or EMAIL_LINK_BASE_URL) is required")
    load_settings(None, **PRODUCTION, smtp_url="smtp://mx:25",
                  email_link_base_url="https://app.example.com/account")  # fmt: skip
    for bad in ("auth.example.com", "ftp://auth.example.com", "https://a.example/?x=1"):
        with pytest.raises(ConfigError) as refused:
            load_settings(None, **PRODUCTION, smtp_url="smtp://mx:25", public_url=bad)
        assert str(refused.value).startswith("PUBLIC_URL: must")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:hunter2-pw@mx:25", "SMTP_URL: must start with smtp:// or smtps://"),
        ("smtp://user:hunter2-pw@:25", "SMTP_URL: names no host"),
        ("smtp://user:hunter2-pw@mx:99999", "SMTP_URL: has a port that is not a number"),
    ],
)
def test_a_bad_smtp_url_is_named_without_its_password(tmp_path, url, problem):
    with pytest.raises(ConfigError) as refused:
        load_settings(None, sqlite_path=str(tmp_path / "a.db"), smtp_url=url)
    assert str(refused.value).startswith(problem)
    assert "hunter2" not in str(refused.value)


def test_check_config_masks_the_smtp_url(tmp_path):
    settings = load_settings(None, sqlite_path=str(tmp_path / "a.db"),
                             smtp_url="smtp://u:hunter2-pw@mx:25")  # fmt: skip
    assert settings.masked()["SMTP_URL"] == "**********"
    assert "hunter2" not in repr(settings)


def test_lease_must_outlast_a_send(tmp_path):
    with pytest.raises(ConfigError, match="OUTBOX_LEASE_S must be at least twice SMTP_TIMEOUT_S"):
        load_settings(None, sqlite_path=str(tmp_path / "a.db"), smtp_timeout_s=30,
                      outbox_lease_s=40)  # fmt: skip


async def test_development_without_smtp_writes_the_mail_with_its_link_to_the_log(caplog):
    from email.message import EmailMessage

    from authsvc.mail.message import to_bytes

    caplog.set_level(logging.INFO, logger="authsvc")
    message = EmailMessage()
    message["Subject"] = "Confirm your email address"
    message.set_content("open https://x.example/c?token=abc&x=1\n")
    message.add_alternative("<a href='…'>x</a>", subtype="html")
    async with LogSender().session() as session:
        await session.send("no-reply@example.com", "ada@example.com", to_bytes(message))
    [line] = [r.getMessage() for r in caplog.records]
    assert "ada@example.com" in line and "Confirm your email address" in line
    assert "https://x.example/c?token=abc&x=1" in line


def test_serve_in_production_with_email_confirmation_and_no_smtp_refuses_in_one_line(
    tmp_path, mysql_server, redis_server
):
    import subprocess

    from tests.e2e.processes import authsvc_command, child_env
    from tests.e2e.test_serve import production_env

    env = production_env(mysql_server, redis_server) | {"EMAIL_CONFIRMATION": "true"}
    result = subprocess.run(authsvc_command("serve"), cwd=tmp_path, env=child_env(env),
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("authsvc: SMTP_URL is required in production when EMAIL_CONFIRMATION=true")
    )
    assert "Traceback" not in result.stderr


async def test_production_without_smtp_runs_no_delivery_and_keeps_what_is_recorded(
    mysql_server, redis_server, tmp_path
):
    from authsvc.services import migrate, open_services
    from tests.conftest import settings_for

    settings = settings_for("servers", mysql_server, redis_server, tmp_path,
                            node_env="production")  # fmt: skip
    await migrate(settings)
    services = await open_services(settings)
    try:
        assert not services.mailer.enabled and services.delivery is None
        message_id = await services.mailer.send("password_changed", "ada@example.com")
        [waiting] = [e for e in await services.outbox.list(1000) if e.id == message_id]
        assert waiting.state == "queued"  # kept, for a process with SMTP_URL to send
    finally:
        async with services.users_db.transaction() as tx:  # the run's database is shared
            await tx.execute("DELETE FROM outbox")
        await services.close()


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(86400, "24 hours"), (3600, "1 hour"), (2 * 86400, "2 days"), (5400, "90 minutes"),
     (60, "1 minute"), (7200, "2 hours"), (30, "30 seconds")],
)  # fmt: skip
def test_a_link_is_never_said_to_last_longer_than_it_does(seconds, said):
    from authsvc.mail.templates import human_duration

    assert human_duration(seconds) == said
