"""Configuration: the Node service's names, .env, production refusals, check-config."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from authsvc.settings import ConfigError, load_settings

GOOD_ACCESS = "k3J9x-access-0123456789abcdefghijklmnopqrstuv"
GOOD_REFRESH = "p8Qz2-refresh-0123456789abcdefghijklmnopqrstu"

PRODUCTION = {
    "node_env": "production",
    "db_type": "mysql",
    "db_host": "db.internal",
    "db_name": "auth",
    "db_username": "auth",
    "redis_host": "redis.internal",
    "jwt_access_secret": GOOD_ACCESS,
    "jwt_refresh_secret": GOOD_REFRESH,
}


def production(**changes):
    values = {k: v for k, v in (PRODUCTION | changes).items() if v is not None}
    return load_settings(None, **values)


def test_node_env_file_is_read_unchanged(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text(
        "APP_PORT=4000\nAPP_HOST=0.0.0.0\nNODE_ENV=development\nDB_TYPE=mysql\n"
        "DB_HOST=127.0.0.1\nDB_PORT=3307\nDB_NAME=auth\nDB_USERNAME=u\nDB_PASSWORD=pw\n"
        "JWT_ACCESS_SECRET=a-secret\nJWT_ACCESS_AGE_S=60\nJWT_REFRESH_SECRET=r-secret\n"
        "JWT_REFRESH_AGE_S=120\nREDIS_HOST=127.0.0.1\nREDIS_PORT=6380\n"
    )
    settings = load_settings(str(env))
    assert (settings.app_port, settings.app_host, settings.db_port) == (4000, "0.0.0.0", 3307)
    assert settings.users_backend == "mysql" and settings.sessions_backend == "redis"
    assert settings.redis_dsn == "redis://127.0.0.1:6380/0"
    assert settings.jwt_access_age_s == 60 and settings.jwt_refresh_age_s == 120
    assert settings.db_password.get_secret_value() == "pw"


def test_environment_wins_over_env_file(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text("APP_PORT=4000\n")
    monkeypatch.setenv("APP_PORT", "4001")
    assert load_settings(str(env)).app_port == 4001


def test_settings_are_frozen():
    settings = production()
    with pytest.raises(ValueError):
        settings.app_port = 1  # type: ignore[misc]


def test_development_default_is_embedded_with_generated_secrets(tmp_path):
    path = str(tmp_path / "state" / "db.sqlite3")
    first = load_settings(None, sqlite_path=path)
    assert first.users_backend == "sqlite" and first.sessions_backend == "sqlite"
    assert first.jwt_access_secret is not None and first.jwt_refresh_secret is not None
    assert first.jwt_access_secret != first.jwt_refresh_secret
    kept = tmp_path / "state" / "dev-secrets.json"
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    again = load_settings(None, sqlite_path=path)  # kept: tokens survive a restart
    assert again.jwt_access_secret == first.jwt_access_secret


def test_production_accepts_a_complete_configuration():
    settings = production()
    assert settings.is_production and settings.users_backend == "mysql"


def test_random_secrets_of_any_common_alphabet_pass_the_variety_check():
    # Hex has only 16 symbols: a threshold of 16 would refuse most `openssl rand -hex 16`.
    for _ in range(200):
        for secret in (secrets.token_hex(16), secrets.token_hex(32), secrets.token_urlsafe(32)):
            settings = production(jwt_access_secret=secret)
            assert settings.jwt_access_secret.get_secret_value() == secret


def test_a_refused_secret_is_not_echoed():
    with pytest.raises(ConfigError) as refused:
        production(jwt_access_secret="q" * 40)
    assert "q" * 8 not in str(refused.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jwt_access_secret": None}, "JWT_ACCESS_SECRET is missing"),
        ({"jwt_refresh_secret": "short"}, "JWT_REFRESH_SECRET is shorter than 32 bytes"),
        (
            {"jwt_access_secret": "a" * 36},
            "JWT_ACCESS_SECRET has fewer than 8 distinct bytes (not random)",
        ),
        (
            {"jwt_refresh_secret": "abcdefg" * 6},
            "JWT_REFRESH_SECRET has fewer than 8 distinct bytes (not random)",
        ),
        (
            {"introspection_client_secret": "xy" * 20},
            "INTROSPECTION_CLIENT_SECRET has fewer than 8 distinct bytes (not random)",
        ),
        (
            {"jwt_access_secret": "change-me-access-secret-at-least-32-bytes"},
            "JWT_ACCESS_SECRET is still an example value",
        ),
        # Enough distinct bytes, one short string said again (the red team's two).
        (
            {"jwt_access_secret": "abcdefgh" * 4},
            "JWT_ACCESS_SECRET repeats a shorter string (not random)",
        ),
        (
            {"jwt_refresh_secret": "0123456789abcdef" * 2},
            "JWT_REFRESH_SECRET repeats a shorter string (not random)",
        ),
        ({"jwt_refresh_secret": GOOD_ACCESS}, "JWT_REFRESH_SECRET must differ"),
        (
            {"introspection_client_secret": GOOD_ACCESS},
            "INTROSPECTION_CLIENT_SECRET must differ from the JWT secrets",
        ),
        ({"db_type": None, "db_host": None}, "DB_TYPE must be mysql or mariadb"),
        ({"db_type": "sqlite"}, "DB_TYPE must be mysql or mariadb"),
        ({"db_name": None}, "DB_NAME is required in production"),
        ({"redis_host": None}, "REDIS_HOST or REDIS_URL is required in production"),
        ({"jwt_leeway_s": 31}, "JWT_LEEWAY_S: Input should be less than or equal to 30"),
        ({"app_port": "abc"}, "APP_PORT: Input should be a valid integer"),
        ({"db_type": "postgres"}, "DB_TYPE: Input should be"),
    ],
)
def test_production_refuses_with_one_line_naming_the_setting(changes, message):
    with pytest.raises(ConfigError) as refused:
        production(**changes)
    text = str(refused.value)
    assert text.startswith(message), text
    assert "\n" not in text
    assert GOOD_ACCESS not in text and GOOD_REFRESH not in text


@pytest.mark.parametrize(
    "value",
    # Windows under a second restarted with every hit (the red team: 2/0.0000001 let
    # 12 guesses through); digits that int() reads but no one types.
    ["0/60", "10/0", "10/0.0", "00/900", "2/0.0000001", "2/0.5", "\u0663/900"],
)
@pytest.mark.parametrize("name", ["rate_limit_login_per_ip", "rate_limit_refresh_per_session"])
def test_a_limit_of_zero_is_refused_not_read_as_off(name, value):
    """0/N silently turned a limit off, and 10/0 passed only to crash `serve`."""
    with pytest.raises(ConfigError) as refused:
        production(**{name: value})
    text = str(refused.value)
    assert text.startswith(f"{name.upper()}: a limit is COUNT/SECONDS"), text
    assert '"off" to turn it off' in text and "\n" not in text


def test_off_and_counts_per_window_are_limits():
    settings = production(rate_limit_login_per_ip="off", rate_limit_register_per_ip="1/1.5")
    assert (settings.rate_limit_login_per_ip, settings.rate_limit_register_per_ip) == (
        "off",
        "1/1.5",
    )


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "DB_", "REDIS_"))}
    return subprocess.run(
        [sys.executable, "-m", "authsvc", *args],
        env=clean | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_configuration_is_one_line_and_exit_2_never_a_traceback(tmp_path):
    result = run_cli("serve", env={"NODE_ENV": "production"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "authsvc: JWT_ACCESS_SECRET is missing"
    result = run_cli("check-config", env={"JWT_ACCESS_AGE_S": "soon"}, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "JWT_ACCESS_AGE_S: Input should be a valid integer" in result.stderr


@pytest.mark.parametrize("command", ["check-config", "serve"])
def test_a_zero_limit_stops_the_cli_with_one_line(tmp_path, command):
    result = run_cli(command, env={"RATE_LIMIT_LOGIN_PER_IP": "10/0"}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("authsvc: RATE_LIMIT_LOGIN_PER_IP: a limit is COUNT/SECONDS")


def test_check_config_masks_secrets(tmp_path):
    env = {k.upper(): v for k, v in PRODUCTION.items()} | {"DB_PASSWORD": "db-pass-word"}
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "JWT_ACCESS_SECRET=**********" in result.stdout
    assert "DB_PASSWORD=**********" in result.stdout
    assert "NODE_ENV=production" in result.stdout and "DB_HOST=db.internal" in result.stdout
    for secret in (GOOD_ACCESS, GOOD_REFRESH, "db-pass-word"):
        assert secret not in result.stdout + result.stderr


def test_an_env_file_with_hash_queue_max_keeps_working_beside_the_wait_bound(tmp_path):
    """HASH_QUEUE_MAX was the only admission bound; it is now an optional cap beside
    HASH_QUEUE_MAX_WAIT_S, so an existing .env loads unchanged."""
    env = tmp_path / ".env"
    env.write_text("HASH_QUEUE_MAX=8\n")
    settings = load_settings(str(env), sqlite_path=str(tmp_path / "db.sqlite3"))
    assert (settings.hash_queue_max, settings.hash_queue_max_wait_s) == (8, 1.0)
    unset = load_settings(None, sqlite_path=str(tmp_path / "db.sqlite3"))
    assert unset.hash_queue_max is None
    with pytest.raises(ConfigError) as refused:
        production(hash_queue_max_wait_s=0)
    assert str(refused.value).startswith("HASH_QUEUE_MAX_WAIT_S:"), str(refused.value)


def test_production_refuses_discovery_without_public_url():
    with pytest.raises(ConfigError) as refused:
        production(discovery=True)
    message = str(refused.value)
    assert message.startswith("PUBLIC_URL is required in production with DISCOVERY=true")
    assert "\n" not in message
    # Unset, it follows PUBLIC_URL: an upgraded deployment without one still starts.
    assert not production().discovery_enabled
    assert production(public_url="https://auth.example.com").discovery_enabled
    assert production(public_url="https://auth.example.com", discovery=True).discovery_enabled
