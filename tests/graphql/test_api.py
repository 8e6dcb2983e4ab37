"""Every operation through the Tornado app, on MariaDB + Redis and on the embedded
default, with the Node service's response shapes exactly as DESIGN.md §1 quotes them."""

from __future__ import annotations

import json
import re
import warnings

import jwt
import jwt.warnings

from tests.conftest import ACCESS_SECRET, REFRESH_SECRET
from tests.helpers import LOGIN, LOGOUT, ME, PASSWORD, REFRESH, REGISTER, new_email, unauthorized

ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_register_answers_201_with_the_user(client):
    email = new_email()
    result = await client.register(email.upper())
    assert result["status"] == 201 and result["errors"] == []
    user = json.loads(result["payload"])
    assert user["email"] == email  # stored lower-cased
    assert user["confirmed"] is True  # the Node service's defect: never confirmed
    assert ISO_MS_Z.match(user["createdAt"])


async def test_register_same_email_any_case_is_already_taken(client):
    email = new_email()
    await client.register(email)
    result = await client.register(email.upper())
    assert result == {
        "status": 401,
        "errors": [{"path": "email", "message": "already taken"}],
        "payload": None,
    }


async def test_register_field_errors(client):
    result = await client.register("not-an-email", "short")
    assert result["status"] == 401 and result["payload"] is None
    assert result["errors"] == [
        {"path": "email", "message": "email must be a valid email"},
        {"path": "password", "message": "password must be at least 8 characters"},
    ]


async def test_register_refuses_passwords_over_72_bytes(client):
    email = new_email()
    result = await client.register(email, "é" * 37)  # 37 characters, 74 bytes
    assert result["status"] == 401
    assert result["errors"] == [
        {"path": "password", "message": "password must be at most 72 bytes"}
    ]
    assert (await client.login(email, "é" * 37))["status"] == 401  # nothing was created


async def test_login_answers_200_with_both_tokens(client):
    email = new_email()
    await client.register(email)
    result = await client.login(email.upper())
    assert result["status"] == 200 and result["errors"] == []
    payload = json.loads(result["payload"])
    assert set(payload) == {"access_token", "refresh_token"}
    access = jwt.decode(
        payload["access_token"], ACCESS_SECRET, algorithms=["HS256"], audience="authsvc"
    )
    refresh = jwt.decode(
        payload["refresh_token"], REFRESH_SECRET, algorithms=["HS256"], audience="authsvc"
    )
    assert access["typ"] == "access" and refresh["typ"] == "refresh"
    assert access["sid"] == refresh["sid"] and access["sub"] == refresh["sub"]
    assert access["exp"] - access["iat"] == 900
    assert refresh["exp"] - refresh["iat"] == 30 * 24 * 3600
    assert {"jti", "iss", "aud"} <= set(access)


async def test_login_failures_all_say_invalid_login(client):
    email = new_email()
    await client.register(email)
    expected = {
        "status": 401,
        "errors": [{"path": "email", "message": "invalid login"}],
        "payload": None,
    }
    assert await client.login(email, "wrong password") == expected
    assert await client.login(new_email()) == expected  # unknown email
    assert await client.login(email, "x" * 100) == expected  # over bcrypt's 72 bytes
    assert await client.login("", "") == expected


async def test_me_returns_the_user(client):
    email = new_email()
    access, _ = await client.tokens(email)
    status, body = await client.post(ME, token=access)
    assert status == 200
    me = body["data"]["me"]
    assert me["email"] == email and me["confirmed"] is True
    assert ISO_MS_Z.match(me["createdAt"]) and ISO_MS_Z.match(me["updatedAt"])


async def test_bearer_scheme_is_case_insensitive(client):
    access, _ = await client.tokens()
    for scheme in ("bearer", "BEARER", "Bearer"):
        _, body = await client.post(ME, headers={"Authorization": f"{scheme} {access}"})
        assert "errors" not in body, scheme


async def test_missing_empty_or_odd_authorization_is_unauthorized(client):
    access, _ = await client.tokens()
    _, body = await client.post(ME)
    assert unauthorized(body, "me")
    for header in ("", "Bearer", "Bearer ", "Basic abc", f"Token {access}", "Bearer a b", access):
        _, body = await client.post(ME, headers={"Authorization": header})
        assert unauthorized(body, "me"), header
    _, body = await client.post(ME, token="not.a.jwt")
    assert unauthorized(body, "me")


async def test_refresh_returns_a_new_access_token(client):
    _, refresh = await client.tokens()
    status, body = await client.post(REFRESH, token=refresh)
    assert status == 200
    access = body["data"]["refresh"]
    _, body = await client.post(ME, token=access)
    assert "errors" not in body


async def test_tokens_are_refused_in_each_others_place(client):
    access, refresh = await client.tokens()
    _, body = await client.post(REFRESH, token=access)
    assert unauthorized(body, "refresh")
    _, body = await client.post(LOGOUT, token=access)
    assert unauthorized(body, "logout")
    _, body = await client.post(ME, token=refresh)
    assert unauthorized(body, "me")


async def test_forged_tokens_are_refused(client):
    _access, refresh = await client.tokens()
    claims = jwt.decode(refresh, options={"verify_signature": False})
    # Signed with the access key, with another HMAC, and unsigned ("none").
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        forgeries = (
            jwt.encode(claims, ACCESS_SECRET, algorithm="HS256"),
            jwt.encode(claims, REFRESH_SECRET, algorithm="HS512"),
            jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        )
    for forged in forgeries:
        _, body = await client.post(REFRESH, token=forged)
        assert unauthorized(body, "refresh")


async def test_logout_revokes_for_good(client):
    email = new_email()
    _, refresh = await client.tokens(email)
    status, body = await client.post(LOGOUT, token=refresh)
    assert (status, body) == (200, {"data": {"logout": True}})
    _, body = await client.post(REFRESH, token=refresh)
    assert unauthorized(body, "refresh")
    # The Node service's defect: after the next login the old token worked again.
    await client.login(email)
    _, body = await client.post(REFRESH, token=refresh)
    assert unauthorized(body, "refresh")
    _, body = await client.post(LOGOUT, token=refresh)
    assert unauthorized(body, "logout")


async def test_logout_ends_only_its_own_session(client):
    email = new_email()
    _, first = await client.tokens(email)
    second = json.loads((await client.login(email))["payload"])["refresh_token"]
    await client.post(LOGOUT, token=first)
    _, body = await client.post(REFRESH, token=second)
    assert "errors" not in body


async def test_refresh_and_logout_without_token(client):
    for query, field in ((REFRESH, "refresh"), (LOGOUT, "logout")):
        status, body = await client.post(query)
        assert status == 200 and unauthorized(body, field)


async def test_get_serves_queries(client):
    access, _ = await client.tokens()
    response = await client.raw(
        "GET", "/graphql?query=%7Bme%7Bemail%7D%7D", headers={"Authorization": f"Bearer {access}"}
    )
    assert response.code == 200 and "email" in json.loads(response.body)["data"]["me"]


async def test_mutation_over_get_is_405(client):
    response = await client.raw("GET", "/graphql?query=mutation%7Blogout%7D")
    assert response.code == 405
    assert response.headers["Allow"] == "POST"
    assert json.loads(response.body)["errors"][0]["message"] == "Mutations must be sent with POST"


async def test_operation_name_picks_the_operation(client):
    email = new_email()
    document = REGISTER + "\n" + LOGIN
    await client.register(email)
    status, body = await client.post(document, {"email": email, "password": PASSWORD})
    assert status == 400  # two operations and no operationName
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "operation name" in body["errors"][0]["message"]
    response = await client.raw(
        body=json.dumps(
            {
                "query": document,
                "variables": {"email": email, "password": PASSWORD},
                "operationName": "Login",
            }
        )
    )
    assert json.loads(response.body)["data"]["login"]["status"] == 200
