"""GraphQL limits: each a validation error before any resolver runs; introspection and
suggestions by environment; error messages only ever quote an excerpt."""

from __future__ import annotations

import pytest

from authsvc.settings import load_settings
from tests.helpers import LOGIN, PASSWORD, new_email


def validation_error(status, body, fragment: str) -> bool:
    return (
        status == 400
        and "data" not in body
        and body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        and fragment in body["errors"][0]["message"]
    )


@pytest.mark.settings(graphql_max_depth=2)
async def test_depth(client):
    status, body = await client.post("{ me { id } }", token="x")
    assert status == 200  # depth 2 is allowed (and answered Unauthorized)
    deep = 'mutation { login(email: "a@b.io", password: "p") { errors { path } } }'
    status, body = await client.post(deep)
    assert validation_error(status, body, "Query depth 3 exceeds the limit of 2")
    hidden = (
        'mutation { login(email: "a@b.io", password: "p") { ...F } } '
        "fragment F on MutationResponse { errors { path } }"
    )
    status, body = await client.post(hidden)
    assert validation_error(status, body, "Query depth 3 exceeds the limit of 2")


@pytest.mark.settings(graphql_max_root_fields=100)
async def test_aliases(client):
    allowed = "{ " + " ".join(f"a{i}: __typename" for i in range(10)) + " }"
    status, _ = await client.post(allowed)
    assert status == 200
    status, body = await client.post(allowed.replace("}", "a10: __typename }"))
    assert validation_error(status, body, "11 aliases exceed the limit of 10")


@pytest.mark.settings(rate_limit_login_failures_per_account="3/60")
async def test_refused_documents_run_no_resolver(client):
    email = new_email()
    await client.register(email)
    fields = " ".join(
        f'a{i}: login(email: "{email}", password: "guess") {{ status }}' for i in range(11)
    )
    status, body = await client.post(f"mutation {{ {fields} }}")
    assert validation_error(status, body, "aliases exceed the limit")
    # Not one of the eleven guesses was counted: the account is not locked.
    assert (await client.login(email))["status"] == 200


async def test_root_fields(client):
    status, body = await client.post("{ " + "__typename " * 11 + "}")
    assert validation_error(status, body, "11 root fields exceed the limit of 10")


async def test_tokens(client):
    status, body = await client.post("{ " + "__typename " * 1000 + "}")
    assert status == 400
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert "more than 1000 tokens" in body["errors"][0]["message"]


async def test_variables_size(client):
    status, body = await client.post(LOGIN, {"email": "x" * 9000, "password": PASSWORD})
    assert validation_error(status, body, "exceed the limit of 8192")


async def test_introspection_and_suggestions_are_on_in_development(client):
    status, body = await client.post("{ __schema { queryType { name } } }")
    assert status == 200 and body["data"]["__schema"]["queryType"]["name"] == "Query"
    status, body = await client.post("{ mee { id } }")
    assert "Did you mean" in body["errors"][0]["message"]


@pytest.mark.settings(graphql_introspection=False)
async def test_introspection_and_suggestions_off(client):
    status, body = await client.post("{ __schema { queryType { name } } }")
    assert validation_error(status, body, "introspection")
    status, body = await client.post('{ __type(name: "User") { name } }')
    assert status == 400
    status, body = await client.post("{ mee { id } }")
    assert status == 400 and "Did you mean" not in body["errors"][0]["message"]
    status, body = await client.post("{ __typename }")
    assert body == {"data": {"__typename": "Query"}}


def test_production_turns_introspection_off_by_default():
    production = {
        "node_env": "production",
        "db_type": "mysql", "db_host": "db", "db_name": "auth", "db_username": "auth",
        "redis_host": "redis",
        "jwt_access_secret": "k3J9x-access-0123456789abcdefghijklmnopqrstuv",
        "jwt_refresh_secret": "p8Qz2-refresh-0123456789abcdefghijklmnopqrstu",
    }  # fmt: skip
    assert load_settings(None, **production).introspection_enabled is False
    assert load_settings(None, **production, graphql_introspection=True).introspection_enabled


async def test_messages_quote_only_an_excerpt(client):
    status, body = await client.post("{ " + "x" * 5000 + " }")
    assert status == 400
    message = body["errors"][0]["message"]
    assert len(message) <= 200 and message.endswith("…")
