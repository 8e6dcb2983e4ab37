"""A key rotation under a running `authsvc serve` (production configuration, ES256,
two workers), seen by standard verifiers: PyJWT's PyJWKClient built from the discovery
document's jwks_uri, and joserfc fed from the same JWKS. No restart anywhere; the
retired key drops out by itself once its tokens have expired.

ES256 rather than EdDSA: joserfc (1.8) warns on "EdDSA", which RFC 9864 deprecates in
favour of the fully specified "Ed25519", and the tests turn warnings into errors.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path
from typing import Any

import jwt
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from tests.e2e.processes import ServiceProcess, authsvc_command, child_env, free_port
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import LOGIN, ME, PASSWORD, REFRESH, REGISTER, error_code, new_email

README = Path(__file__).resolve().parents[2] / "README.md"
ACCESS_AGE_S = 4
MARGIN_S = 3  # the least allowed: above the workers' 2 s to see a rotation


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """(status, headers, whose names match in any case, body)."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def keys(cwd, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        authsvc_command("keys", *args), cwd=cwd, env=child_env(env),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def pyjwt_verify(client: jwt.PyJWKClient, token: str, issuer: str) -> dict[str, Any]:
    key = client.get_signing_key_from_jwt(token)  # an unknown kid refetches the set
    return jwt.decode(token, key.key, algorithms=["ES256"], audience="authsvc", issuer=issuer)


def joserfc_verify(jwks_uri: str, token: str, issuer: str) -> dict[str, Any]:
    keyset = KeySet.import_key_set(json.loads(get(jwks_uri)[2]))
    decoded = jose_jwt.decode(token, keyset, algorithms=["ES256"])
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer}, aud={"essential": True, "value": "authsvc"}
    ).validate(decoded.claims)
    return decoded.claims


def readme_verify(public: str) -> Any:
    """The README's copy-paste verifier, configured from this service's document."""
    block = re.search(r"```python\n(import json\n.*?DISCOVERY = .*?)```", README.read_text(), re.S)
    assert block, "the README lost its discovery example"
    code = block.group(1).replace("https://auth.example.com", public)
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - our own README
    return namespace["verify"]


def test_rotation_without_restart_seen_by_standard_verifiers(tmp_path, mysql_server, redis_server):
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    env = production_env(mysql_server, redis_server) | {
        "JWT_ALGORITHM": "ES256",
        "JWT_KEYS_DIR": str(tmp_path / "keys"),
        "PUBLIC_URL": public,
        "JWT_ISSUER": public,  # strict verifiers compare it with where they found it
        "JWT_ACCESS_AGE_S": str(ACCESS_AGE_S),
        "JWT_KEY_RETIRE_MARGIN_S": str(MARGIN_S),
        "WORKERS": "2",
        "RATE_LIMIT_REFRESH_PER_SESSION": "off",  # the test refreshes often on purpose
    }
    env.pop("JWT_ACCESS_SECRET")  # unused with ES256
    migrate(tmp_path, env)
    keys(tmp_path, env, "generate")
    service = ServiceProcess(tmp_path, env, port)
    try:
        status, _, body = get(public + "/.well-known/openid-configuration")
        document = json.loads(body)
        assert status == 200 and document["issuer"] == public
        assert document["id_token_signing_alg_values_supported"] == ["ES256"]
        jwks_uri = document["jwks_uri"]
        assert jwks_uri == public + "/.well-known/jwks.json"
        # cooldown: how soon after a fetch an unknown kid may refetch (here, seconds after
        # the start; an operator waits JWKS_MAX_AGE_S between generate and rotate).
        client = jwt.PyJWKClient(jwks_uri, cache_jwk_set=True, lifespan=300, cooldown_duration=0.5)

        email = new_email()
        assert service.graphql(REGISTER, {"email": email, "password": PASSWORD})[0] == 200
        login = service.graphql(LOGIN, {"email": email, "password": PASSWORD})[1]
        refresh_token = json.loads(login["data"]["login"]["payload"])["refresh_token"]

        def access_token() -> str:
            return str(service.graphql(REFRESH, token=refresh_token)[1]["data"]["refresh"])

        old = access_token()
        old_kid = kid(old)
        assert pyjwt_verify(client, old, public)["typ"] == "access"
        _, headers, _ = get(jwks_uri)
        old_etag = headers["ETag"]

        keys(tmp_path, env, "generate")  # published before it signs
        rotated_at = time.monotonic()
        said = keys(tmp_path, env, "rotate")
        # Published a moment ago: the CLI warns (PyJWKClient copes: it refetches).
        assert "signs now" in said and "warning:" in said and "JWKS_MAX_AGE_S=300" in said
        # Every worker follows: the next tokens all carry the new kid, within the bound.
        deadline = rotated_at + 4
        in_a_row, new = 0, old
        while in_a_row < 6:
            assert time.monotonic() < deadline, "the workers did not follow the rotation"
            new = access_token()
            in_a_row = in_a_row + 1 if kid(new) != old_kid else 0
            time.sleep(0.02)
        print(f"every worker signed with the new key {time.monotonic() - rotated_at:.2f} s "
              "after `keys rotate` began")  # fmt: skip
        new_kid = kid(new)
        # The old token still verifies, everywhere, until it expires.
        assert "errors" not in service.graphql(ME, token=old)[1]
        assert pyjwt_verify(client, old, public)["sub"]
        # The new one: PyJWKClient refetches on the unknown kid; joserfc reads the set.
        assert (
            pyjwt_verify(client, new, public)["sub"] == joserfc_verify(jwks_uri, new, public)["sub"]
        )
        status, headers, body = get(jwks_uri, {"If-None-Match": old_etag})
        assert status == 200 and headers["ETag"] != old_etag  # the set changed
        published = [key["kid"] for key in json.loads(body)["keys"]]
        assert old_kid in published and new_kid in published
        assert all(key.keys() >= {"kid", "alg", "use"} for key in json.loads(body)["keys"])
        assert get(jwks_uri, {"If-None-Match": headers["ETag"]})[0] == 304
        listed = keys(tmp_path, env, "list")
        assert f"{old_kid}" in listed and "retired until" in listed

        # The old key retires by itself: retired_at + JWT_ACCESS_AGE_S + margin.
        time.sleep(max(0.0, rotated_at + ACCESS_AGE_S + MARGIN_S + 1.2 - time.monotonic()))
        published = [key["kid"] for key in json.loads(get(jwks_uri)[2])["keys"]]
        assert published == [new_kid]
        assert error_code(service.graphql(ME, token=old)[1]) == "UNAUTHENTICATED"
        assert "expired" in keys(tmp_path, env, "list")
        assert "errors" not in service.graphql(ME, token=access_token())[1]
    finally:
        code = service.terminate()
    assert code == 0
    assert "Traceback" not in service.logs()


def test_production_refuses_discovery_without_public_url(tmp_path, mysql_server, redis_server):
    env = production_env(mysql_server, redis_server) | {"DISCOVERY": "true"}
    result = subprocess.run(
        authsvc_command("serve", "--port", str(free_port())), cwd=tmp_path,
        env=child_env(env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "PUBLIC_URL is required in production with DISCOVERY=true" in line
