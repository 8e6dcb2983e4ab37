"""The JWKS endpoint and asymmetric access tokens through the app."""

from __future__ import annotations

import json

import jwt
import pytest

from authsvc.core.keys import generate_private_key
from authsvc.settings import ConfigError, load_settings
from authsvc.signing import access_ring
from authsvc.stores.keyfiles import write_key
from tests.helpers import ME

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


async def jwks(client):
    response = await client.raw("GET", "/.well-known/jwks.json")
    assert response.code == 200
    assert response.headers["Cache-Control"] == "public, max-age=300"
    return json.loads(response.body)


async def test_hs256_publishes_no_key(client):
    assert await jwks(client) == {"keys": []}


async def check_published_key_verifies(client, algorithm: str) -> None:
    [key] = (await jwks(client))["keys"]
    assert key["alg"] == algorithm and key["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(key)
    access, _ = await client.tokens()
    header = jwt.get_unverified_header(access)
    assert header == {"alg": algorithm, "typ": "JWT", "kid": key["kid"]}
    claims = jwt.decode(
        access, jwt.PyJWK(key).key, algorithms=[algorithm], audience="authsvc", issuer="authsvc"
    )
    assert claims["typ"] == "access"
    _, body = await client.post(ME, token=access)
    assert "errors" not in body


@pytest.mark.settings(jwt_algorithm="EdDSA")
async def test_eddsa(client):
    await check_published_key_verifies(client, "EdDSA")


@pytest.mark.settings(jwt_algorithm="ES256")
async def test_es256(client):
    await check_published_key_verifies(client, "ES256")


@pytest.mark.settings(jwt_algorithm="RS256")
async def test_rs256(client):
    await check_published_key_verifies(client, "RS256")


def test_production_without_a_key_is_one_clear_line(tmp_path):
    settings = load_settings(
        None,
        node_env="production",
        jwt_algorithm="EdDSA",
        jwt_keys_dir=str(tmp_path / "none"),
        jwt_refresh_secret="k3J9x-refresh-0123456789abcdefghijklmnopqrstu",
        db_type="mysql",
        db_host="db",
        db_name="auth",
        db_username="auth",
        redis_host="redis",
    )
    with pytest.raises(ConfigError) as refused:
        access_ring(settings)
    assert str(refused.value).startswith("JWT_ALGORITHM=EdDSA needs a private key")
    assert not (tmp_path / "none").exists()  # production never generates one


def test_a_key_of_the_wrong_type_is_refused(tmp_path):
    write_key(tmp_path, generate_private_key("RS256"))
    settings = load_settings(
        None, jwt_algorithm="EdDSA", jwt_keys_dir=str(tmp_path), sqlite_path=str(tmp_path / "db")
    )
    with pytest.raises(ConfigError, match="cannot sign EdDSA"):
        access_ring(settings)
