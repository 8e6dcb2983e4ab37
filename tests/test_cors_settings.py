"""CORS_ORIGINS, CORS_ALLOW_CREDENTIALS, CORS_MAX_AGE_S: defaults per environment,
normalized exact origins, and one-line refusals of what would let any site in."""

from __future__ import annotations

import pytest

from authsvc.settings import ConfigError, load_settings
from tests.test_settings import production


def development(tmp_path, **values):
    return load_settings(None, sqlite_path=str(tmp_path / "db.sqlite3"), **values)


def test_development_allows_the_node_services_front_end_and_production_nothing(tmp_path):
    assert development(tmp_path).cors_allowed_origins == ("http://localhost:3000",)
    assert development(tmp_path, cors_origins="off").cors_allowed_origins == ()
    assert production().cors_allowed_origins == ()
    assert development(tmp_path, node_env="test").cors_allowed_origins == ()


def test_origins_are_kept_as_a_browser_writes_them():
    settings = production(
        cors_origins="HTTPS://App.Example.com:443/, http://127.0.0.1:8080,http://[::1]:80"
    )
    assert settings.cors_allowed_origins == (
        "https://app.example.com",
        "http://127.0.0.1:8080",
        "http://[::1]",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://*.example.com", "patterns are not matched"),
        ("null", "`null` cannot be allowed"),
        ("https://app.example.com/login", "an origin is scheme://host[:port], nothing more"),
        ("app.example.com", "is not an origin such as"),
        ("*, https://app.example.com", "`*` must stand alone"),
        ("https://bücher.example", "ASCII (xn--) form"),
    ],
)
def test_what_is_no_exact_origin_is_refused_in_one_line(value, message):
    with pytest.raises(ConfigError, match=r"^CORS_ORIGINS: ") as refused:
        production(cors_origins=value)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_any_origin_is_refused_with_credentials(tmp_path):
    assert production(cors_origins="*").cors_any_origin
    for load in (production, lambda **v: development(tmp_path, **v)):
        with pytest.raises(ConfigError, match=r"^CORS_ORIGINS=\* cannot be used with CORS_ALLOW"):
            load(cors_origins="*", cors_allow_credentials=True)
    listed = production(cors_origins="https://app.example.com", cors_allow_credentials=True)
    assert listed.cors_allow_credentials


def test_max_age_is_bounded_by_what_chromium_honours():
    assert production().cors_max_age_s == 600
    with pytest.raises(ConfigError, match=r"^CORS_MAX_AGE_S: "):
        production(cors_max_age_s=86400)
