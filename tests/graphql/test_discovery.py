"""The discovery documents and the JWKS's caching headers, through the app."""

from __future__ import annotations

import json

import jwt
import pytest

#: Nothing here depends on the stores: the embedded backend is enough.
embedded = pytest.mark.parametrize("backend", ["embedded"])

PUBLIC = "https://auth.example.com"
PATHS = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")


async def documents(client) -> dict:
    found = []
    for path in PATHS:
        response = await client.raw("GET", path)
        assert response.code == 200, path
        assert response.headers["Content-Type"].startswith("application/json")
        found.append(json.loads(response.body))
    assert found[0] == found[1]  # one document at both names
    return found[0]


@pytest.mark.settings(public_url=PUBLIC + "/", jwt_issuer=PUBLIC)
@embedded
async def test_hmac_says_there_is_no_key_and_no_flow(client):
    document = await documents(client)
    access, _ = await client.tokens()
    assert document["issuer"] == jwt.decode(access, options={"verify_signature": False})["iss"]
    assert document == {
        "issuer": PUBLIC,
        "jwks_uri": PUBLIC + "/.well-known/jwks.json",  # from PUBLIC_URL, slash trimmed
        "response_types_supported": [],
        "response_modes_supported": [],
        "grant_types_supported": [],
        "token_endpoint_auth_methods_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [],  # an HMAC key is never published
    }
    response = await client.raw("GET", "/.well-known/jwks.json")
    assert json.loads(response.body) == {"keys": []}


@pytest.mark.settings(
    jwt_algorithm="EdDSA", introspection_client_secret="introspection-secret-0123456789abcdefg"
)
@embedded
async def test_asymmetric_with_introspection(client, settings):
    document = await documents(client)
    assert document["issuer"] == "authsvc"  # JWT_ISSUER, exactly what the tokens say
    base = f"http://{settings.app_host}:{settings.app_port}"  # no PUBLIC_URL: the listen address
    assert document["jwks_uri"] == base + "/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["EdDSA"]
    assert document["introspection_endpoint"] == base + "/introspect"
    assert document["introspection_endpoint_auth_methods_supported"] == ["client_secret_basic"]
    assert "authorization_endpoint" not in document and "token_endpoint" not in document
    [key] = json.loads((await client.raw("GET", "/.well-known/jwks.json")).body)["keys"]
    assert {key["kid"], key["alg"], key["use"]} >= {"EdDSA", "sig"} and key["kid"]


@pytest.mark.settings(jwt_algorithm="ES256", jwks_max_age_s=123)
@pytest.mark.parametrize("path", ["/.well-known/jwks.json", PATHS[0]])
@embedded
async def test_etag_and_max_age_from_the_setting(client, path):
    first = await client.raw("GET", path)
    assert first.code == 200
    assert first.headers["Cache-Control"] == "public, max-age=123"
    etag = first.headers["ETag"]
    again = await client.raw("GET", path, headers={"If-None-Match": etag})
    assert again.code == 304 and again.body == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "public, max-age=123"
    other = await client.raw("GET", path, headers={"If-None-Match": '"something-else"'})
    assert other.code == 200 and other.body == first.body


@pytest.mark.settings(discovery=False)
@embedded
async def test_discovery_can_be_switched_off(client):
    for path in PATHS:
        assert (await client.raw("GET", path)).code == 404
    assert (await client.raw("GET", "/.well-known/jwks.json")).code == 200
