"""Bad input gets a clear error, never a 500 or a stack trace, and changes nothing."""

from __future__ import annotations

import json

from tests.helpers import LOGIN, REGISTER, new_email


def message(response) -> str:
    body = json.loads(response.body)
    assert set(body) == {"errors"}
    return body["errors"][0]["message"]


async def test_invalid_json_is_400(client):
    response = await client.raw(body="{not json")
    assert response.code == 400 and message(response) == "Request body is not valid JSON"
    response = await client.raw(body=b"\xff\xfe")
    assert response.code == 400


async def test_non_object_body_is_400(client):
    for body in ('"query"', "42", "null"):
        response = await client.raw(body=body)
        assert response.code == 400, body
        assert message(response) == "Request body must be a JSON object"


async def test_batches_are_off_by_default(client):
    response = await client.raw(body=json.dumps([{"query": "{ me { id } }"}]))
    assert response.code == 400
    assert message(response) == "Batched requests (a JSON array body) are off on this server"


async def test_missing_query_is_400(client):
    bodies: list[dict[str, object]] = [{}, {"query": ""}, {"query": 42}, {"variables": {}}]
    for body in bodies:
        response = await client.raw(body=json.dumps(body))
        assert response.code == 400, body
        assert message(response).startswith("Missing query")


async def test_bad_variables_and_operation_name_are_400(client):
    response = await client.raw(body=json.dumps({"query": "{me{id}}", "variables": [1]}))
    assert response.code == 400 and message(response) == "variables must be a JSON object"
    response = await client.raw(body=json.dumps({"query": "{me{id}}", "operationName": 1}))
    assert response.code == 400 and message(response) == "operationName must be a string"


async def test_body_over_the_limit_is_413_and_changes_nothing(client):
    email = new_email()
    padding = "x" * (64 * 1024)
    body = json.dumps(
        {
            "query": REGISTER + "#" + padding,
            "variables": {"email": email, "password": "longpassword"},
        }
    )
    response = await client.raw(body=body)
    assert response.code == 413
    assert message(response) == "Request body is larger than 65536 bytes"
    assert (await client.login(email, "longpassword"))["status"] == 401


async def test_chunked_body_over_the_limit_is_413(client):
    async def producer(write):
        for _ in range(10):
            await write(b"x" * 10_000)

    response = await client.raw(body_producer=producer)
    assert response.code == 413


async def test_syntax_error_is_400_parse_failed(client):
    status, body = await client.post("mutation { login(")
    assert status == 400
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert body["errors"][0]["message"].startswith("Syntax Error")


async def test_unknown_field_is_a_validation_error(client):
    status, body = await client.post("{ users { id } }")
    assert status == 400
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "users" in body["errors"][0]["message"]


async def test_wrong_argument_types_are_validation_errors(client):
    status, body = await client.post('mutation { login(email: 1, password: "x") { status } }')
    assert status == 400
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    status, body = await client.post('mutation { login(email: "a@b.c") { status } }')
    assert status == 400


async def test_wrong_variable_types_are_400(client):
    status, body = await client.post(LOGIN, {"email": 1, "password": None})
    assert status == 400
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_unknown_path_is_json_404(client):
    response = await client.raw("GET", "/nope")
    assert response.code == 404 and message(response) == "Not Found"


async def test_other_methods_are_json_405(client):
    response = await client.raw("PUT", body="{}")
    assert response.code == 405 and "Traceback" not in response.body.decode()


async def test_no_response_shows_a_stack_trace(client):
    bodies = [
        "{",
        "[]",
        json.dumps({"query": "{ me { nope } }"}),
        json.dumps({"query": "{me{id}}"}),
    ]
    for body in bodies:
        response = await client.raw(body=body)
        assert response.code < 500
        assert "Traceback" not in response.body.decode()
        assert 'File "' not in response.body.decode()
