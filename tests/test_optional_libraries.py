"""cryptography is left out of `authsvc serve` only where nothing can need it, and
PyJWT and PyMySQL still work without it (in a fresh interpreter: this one has it)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from authsvc.optional_libraries import needs_cryptography
from authsvc.settings import Settings
from tests.conftest import ACCESS_SECRET, REFRESH_SECRET


def settings(**values: Any) -> Settings:
    base = {"jwt_access_secret": ACCESS_SECRET, "jwt_refresh_secret": REFRESH_SECRET}
    return Settings(_env_file=None, **(base | values))  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("values", "needed"),
    [
        ({}, False),  # HS256 on the embedded SQLite store
        ({"db_type": "mariadb", "db_host": "db"}, False),
        ({"jwt_algorithm": "HS512", "db_type": "mariadb", "db_host": "db"}, False),
        ({"db_type": "mysql", "db_host": "db"}, True),  # MySQL 8's RSA password exchange
        ({"db_host": "db"}, True),  # MySQL or MariaDB: unknown, so kept
        ({"jwt_algorithm": "EdDSA"}, True),
        ({"jwt_algorithm": "RS256", "db_type": "mariadb", "db_host": "db"}, True),
    ],
)
def test_needed_only_for_asymmetric_tokens_or_mysql(values, needed):
    assert needs_cryptography(settings(**values)) is needed


LEFT_OUT = """
import sys
from authsvc.optional_libraries import leave_out_cryptography
assert leave_out_cryptography() is True
assert leave_out_cryptography() is True  # still out
import jwt, pymysql._auth
assert jwt.algorithms.has_crypto is False and pymysql._auth._have_cryptography is False
token = jwt.encode({"sub": "1"}, "k" * 32, algorithm="HS256")
assert jwt.decode(token, "k" * 32, algorithms=["HS256"]) == {"sub": "1"}
try:
    jwt.encode({"sub": "1"}, "k", algorithm="EdDSA")
except NotImplementedError:
    pass
else:
    raise AssertionError("EdDSA signed without cryptography")
assert sys.modules["cryptography"] is None
print("ok")
"""

ALREADY_LOADED = """
import cryptography.hazmat.primitives.serialization
from authsvc.optional_libraries import leave_out_cryptography
assert leave_out_cryptography() is False
import jwt
assert jwt.algorithms.has_crypto is True
print("ok")
"""


@pytest.mark.parametrize("program", [LEFT_OUT, ALREADY_LOADED], ids=["left-out", "loaded"])
def test_leaving_cryptography_out(program):
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr
