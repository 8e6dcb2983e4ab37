"""authsvc.verifier: light imports, shared-secret and JWKS verification against the
real server, key rotation seen by a verifier, and the Tornado decorator."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import tornado.web

from authsvc.core.keys import KeyRing, hmac_key
from authsvc.core.tokens import TokenCodec, TokenType
from authsvc.verifier import AccessTokenVerifier, TokenExpired, TokenInvalid, authenticated
from tests.e2e.processes import ServiceProcess, authsvc_command, child_env, free_port
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email

SECRET = "verifier-test-secret-0123456789abcdef"


def codec(now: datetime | None = None) -> TokenCodec:
    ring = KeyRing("HS256", [hmac_key(SECRET)])
    moment = now or datetime.now(UTC)
    return TokenCodec(
        access=TokenType("access", ring, 900),
        refresh=TokenType("refresh", KeyRing("HS256", [hmac_key("r" * 32)]), 3600),
        issuer="authsvc",
        audience="authsvc",
        leeway_s=0,
        clock=lambda: moment,
    )


def test_imports_nothing_heavy():
    code = (
        "import sys, authsvc.verifier\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('tornado', 'redis', 'aiomysql', 'pymysql', 'aiosqlite', 'graphql', 'pydantic')]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_shared_secret_verification():
    tokens = codec()
    verifier = AccessTokenVerifier(secret=SECRET)
    access = tokens.issue(tokens.access, "user-1", "sid-1")
    assert verifier.verify(access)["sub"] == "user-1"
    assert verifier.verify_authorization(f"bearer {access}")["sid"] == "sid-1"
    with pytest.raises(TokenInvalid):
        verifier.verify(tokens.issue(tokens.refresh, "user-1", "sid-1"))  # wrong type
    with pytest.raises(TokenInvalid):
        AccessTokenVerifier(secret=SECRET, audience="other").verify(access)
    with pytest.raises(TokenInvalid):
        AccessTokenVerifier(secret=SECRET, issuer="other").verify(access)
    with pytest.raises(TokenInvalid):
        verifier.verify_authorization(None)
    expired = codec(datetime.now(UTC) - timedelta(hours=1)).issue(tokens.access, "u", "s")
    with pytest.raises(TokenExpired):
        verifier.verify(expired)


def login(service: ServiceProcess) -> str:
    email = new_email()
    service.graphql(REGISTER, {"email": email, "password": PASSWORD})
    _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
    return json.loads(body["data"]["login"]["payload"])["access_token"]


def test_jwks_verification_follows_key_rotation(tmp_path):
    env = {"JWT_ALGORITHM": "EdDSA", "BCRYPT_ROUNDS": "4"}

    def keys(*args: str) -> str:
        result = subprocess.run(
            authsvc_command("keys", *args), cwd=tmp_path, env=child_env(env),
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return result.stdout

    port = free_port()  # one address across restarts, as behind a load balancer
    jwks_url = f"http://127.0.0.1:{port}/.well-known/jwks.json"
    service = ServiceProcess(tmp_path, env, port)
    try:
        verifier = AccessTokenVerifier(jwks_url=jwks_url, refetch_interval_s=0)
        old_token = login(service)
        old_kid = jwt.get_unverified_header(old_token)["kid"]
        assert verifier.verify(old_token)["typ"] == "access"
    finally:
        assert service.terminate() == 0

    keys("rotate")  # a new key signs; the old one still verifies
    service = ServiceProcess(tmp_path, env, port)
    try:
        new_token = login(service)
        assert jwt.get_unverified_header(new_token)["kid"] != old_kid
        assert verifier.verify(new_token)["sub"]  # unknown kid: the set is refetched
        assert verifier.verify(old_token)["sub"]
    finally:
        assert service.terminate() == 0

    keys("remove", old_kid)
    service = ServiceProcess(tmp_path, env)
    try:
        fresh = AccessTokenVerifier(
            jwks_url=f"http://127.0.0.1:{service.port}/.well-known/jwks.json"
        )
        with pytest.raises(TokenInvalid):
            fresh.verify(old_token)
        assert fresh.verify(new_token)["sub"]
    finally:
        assert service.terminate() == 0


class Protected(tornado.web.RequestHandler):
    token_claims: dict  # set by @authenticated

    @authenticated(AccessTokenVerifier(secret=SECRET))
    async def get(self) -> None:
        self.write({"user": self.token_claims["sub"]})


@pytest.fixture
def verifier_app():
    return tornado.web.Application([("/protected", Protected)])


@pytest.fixture
def app(verifier_app):
    return verifier_app


async def test_tornado_decorator(http_server_client):
    tokens = codec()
    access = tokens.issue(tokens.access, "user-7", "sid")
    response = await http_server_client.fetch(
        "/protected", headers={"Authorization": f"Bearer {access}"}
    )
    assert json.loads(response.body) == {"user": "user-7"}
    response = await http_server_client.fetch("/protected", raise_error=False)
    assert response.code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    expired = codec(datetime.now(UTC) - timedelta(hours=1)).issue(tokens.access, "u", "s")
    response = await http_server_client.fetch(
        "/protected", headers={"Authorization": f"Bearer {expired}"}, raise_error=False
    )
    assert response.code == 401
    assert 'error_description="expired"' in response.headers["WWW-Authenticate"]
