""".env.example documents every setting, and its values load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from authsvc.settings import ConfigError, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def documented_names() -> list[str]:
    return re.findall(r"^([A-Z][A-Z0-9_]*)=", EXAMPLE.read_text(), flags=re.MULTILINE)


def test_every_setting_is_in_env_example_with_a_comment():
    names = documented_names()
    assert sorted(names) == sorted(name.upper() for name in Settings.model_fields)
    lines = EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            above = next(x for x in reversed(lines[:index]) if not re.match(r"^[A-Z]", x))
            assert above.startswith("#"), f"{line} has no comment above it"


def test_env_example_loads_in_development_and_is_refused_in_production(tmp_path):
    env = tmp_path / ".env"
    env.write_text(EXAMPLE.read_text())
    settings = load_settings(str(env), sqlite_path=str(tmp_path / "db.sqlite3"))
    assert settings.users_backend == "sqlite" and settings.app_port == 3000
    with pytest.raises(ConfigError, match="JWT_ACCESS_SECRET is still an example value"):
        load_settings(str(env), node_env="production")
