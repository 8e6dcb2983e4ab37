"""Bad input gets a clear error, never a 500 or a stack trace, and changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.helpers import LOGIN, REGISTER, new_email, raw_post


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


def register_body(email: str) -> str:
    return json.dumps(
        {"query": REGISTER, "variables": {"email": email, "password": "longpassword"}}
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",  # what a page's fetch(url, {body: string}) sends
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/graphql",
        "application/jsonp",
        "application/json-seq",
        "text/plain; application/json",
        "",
    ],
)
async def test_a_post_that_is_not_json_is_415_and_changes_nothing(client, content_type):
    email = new_email()
    response = await client.raw(body=register_body(email), headers={"Content-Type": content_type})
    assert response.code == 415
    assert message(response) == "Content-Type must be application/json"
    assert "Traceback" not in response.body.decode()
    assert (await client.login(email, "longpassword"))["status"] == 401  # never registered


async def test_a_post_without_content_type_is_415(client, http_server_port):
    email = new_email()
    status, body = await raw_post(http_server_port[1], register_body(email).encode())
    assert status == 415
    assert body == {"errors": [{"message": "Content-Type must be application/json"}]}
    assert (await client.login(email, "longpassword"))["status"] == 401


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"],
)
async def test_application_json_with_parameters_is_accepted(client, http_server_port, content_type):
    email = new_email()
    header = f"Content-Type: {content_type}\r\n".encode()
    status, body = await raw_post(http_server_port[1], register_body(email).encode(), header)
    assert status == 200 and body["data"]["register"]["status"] == 201, body
    assert (await client.login(email, "longpassword"))["status"] == 200


async def test_get_queries_need_no_content_type(client):
    for headers in ({}, {"Content-Type": "text/plain"}):
        response = await client.raw("GET", "/graphql?query=%7B__typename%7D", headers=headers)
        assert response.code == 200
        assert json.loads(response.body) == {"data": {"__typename": "Query"}}
