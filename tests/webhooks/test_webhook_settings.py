"""WEBHOOKS and its companions: read from `.env` as JSON, each mistake one line naming
the setting and never quoting a secret, plain http:// refused in production but to
loopback (or with WEBHOOK_ALLOW_HTTP), the secrets masked by check-config."""

from __future__ import annotations

import json

import pytest

from authsvc.settings import ConfigError, load_settings
from tests.test_settings import PRODUCTION, production, run_cli
from tests.webhooks.conftest import new_secret

SECRET = new_secret()


def hooks(url: str = "https://hooks.example.com/in", **entry) -> str:
    return json.dumps([{"url": url, "secrets": SECRET} | entry])


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/in", "http://10.0.0.7:8080/in", "http://[2001:db8::1]/"]
)
def test_production_refuses_plain_http_to_another_host(url):
    with pytest.raises(ConfigError) as refused:
        production(webhooks=hooks(url))
    message = str(refused.value)
    assert message.startswith("WEBHOOKS.0.URL: plain http:// to another host is refused")
    assert "WEBHOOK_ALLOW_HTTP=true" in message and "\n" not in message
    assert production(webhooks=hooks(url), webhook_allow_http=True).webhooks[0].url == url


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/in", "http://127.0.0.1:9000/in", "http://localhost/in",
     "http://[::1]:8080/"],
)  # fmt: skip
def test_production_takes_https_and_loopback(url):
    assert production(webhooks=hooks(url)).webhooks[0].url == url


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('[{"url": "https://x.example", "secrets": "' + SECRET + '"', "WEBHOOKS: is not JSON"),
        (hooks(secrets="whsec_c2hvcnQ="), "WEBHOOKS.0.SECRETS: each secret must hold 24 to 64"),
        (hooks(secrets=SECRET[6:]), "WEBHOOKS.0.SECRETS: each secret must start with whsec_"),
        (hooks(secrets="whsec_***not base64***"), "WEBHOOKS.0.SECRETS: each secret must be"),
        (hooks(secrets=[]), "WEBHOOKS.0.SECRETS: needs at least one"),
        (hooks(events=["user.created"]), "WEBHOOKS.0.EVENTS: 'user.created' is no event type"),
        (hooks("ftp://x.example/"), "WEBHOOKS.0.URL: must be an absolute http"),
        (hooks("https://me:pw@x.example/"), "WEBHOOKS.0.URL: must hold no user or password"),
        (hooks(secret=SECRET), "WEBHOOKS.0.SECRET: Extra inputs are not permitted"),
    ],
)
def test_a_mistake_is_one_line_naming_the_entry_and_never_the_secret(value, message):
    with pytest.raises(ConfigError) as refused:
        load_settings(None, webhooks=value)
    assert str(refused.value).startswith(message), str(refused.value)
    assert SECRET[6:] not in str(refused.value) and "\n" not in str(refused.value)


def test_two_endpoints_with_one_url_are_refused():
    """The outbox names an endpoint by its URL: the second's secrets would sign the
    first's events, which its receiver then refuses until they die."""
    two = json.dumps([{"url": "https://x.example/in?a=1", "secrets": SECRET},
                      {"url": "https://x.example/in?a=1", "secrets": new_secret()}])  # fmt: skip
    with pytest.raises(ConfigError, match="endpoint 1 has the URL of an earlier one") as refused:
        load_settings(None, webhooks=two)
    assert "a=1" not in str(refused.value)


def test_the_lease_must_outlast_two_timeouts():
    with pytest.raises(ConfigError, match="at least twice WEBHOOK_TIMEOUT_S"):
        load_settings(None, webhooks=hooks(), webhook_timeout_s=100)


def test_an_env_file_entry_loads_and_check_config_masks_the_secrets(tmp_path):
    other = new_secret()
    line = json.dumps([{"url": "https://hooks.example.com/in?tok=RECEIVERS-OWN",
                        "secrets": f"{SECRET} {other}",
                        "events": ["user.deleted", "session.revoked"]}])  # fmt: skip
    (tmp_path / ".env").write_text(f"WEBHOOKS='{line}'\n")
    env = {k.upper(): v for k, v in PRODUCTION.items()}
    result = run_cli("check-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "https://hooks.example.com/in" in result.stdout
    assert "RECEIVERS-OWN" not in result.stdout  # the query, as in the logs: not shown
    assert "'**********', '**********'" in result.stdout
    for secret in (SECRET, other):
        assert secret[6:] not in result.stdout + result.stderr
    settings = load_settings(str(tmp_path / ".env"))
    [endpoint] = settings.webhooks
    assert endpoint.wants("user.deleted") and not endpoint.wants("user.registered")
    assert len(endpoint.secrets) == 2
