"""The direct path for hot documents answers exactly what graphql-core's executor does.

graphql-core's own answer is had by sending the same document with `@include(if: true)`
at the end of the root field: same meaning and same error locations, but a directive
keeps it off the direct path.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from graphql import get_operation_ast, parse

from authsvc.core.errors import Unauthorized
from authsvc.core.sessions import ClientInfo
from authsvc.graphql.context import RequestContext
from authsvc.graphql.direct import plan
from authsvc.graphql.execution import executed
from authsvc.graphql.resolvers import OPERATIONS, RESOLVERS, graphql_resolver
from authsvc.graphql.schema import build_executable_schema

SCHEMA = build_executable_schema(RESOLVERS)

DIRECT = [
    "mutation { refresh }",
    "mutation Refresh { refresh }",
    "{ me { id email } }",
    "query Me { me { id email confirmed createdAt updatedAt } }",
    "{ who: me { mail: email id } }",
    "mutation { renew { accessToken refreshToken expiresIn tokenType } }",
    "mutation { logout }",
    "mutation { logoutAll }",
]
NOT_DIRECT = [
    "{ me { id __typename } }",  # __typename: graphql-core's
    "{ me { id id } }",  # one key twice: graphql-core merges it
    "{ me { ...F } } fragment F on User { id }",
    "{ me { id @include(if: true) } }",
    "query($x: Boolean!) { me { id @skip(if: $x) } }",
    "{ me { id } sessions { id } }",  # two root fields
    "{ sessions { id } }",  # a list
    'mutation { login(email: "a@b.c", password: "p") { status } }',  # arguments
    "mutation { refresh @include(if: true) }",
    "{ __typename }",
    "mutation A { refresh } mutation B { logout }",
]


def direct_plan(query: str) -> Any:
    document = parse(query)
    operation = get_operation_ast(document)
    if operation is None:
        return None
    return plan(SCHEMA, document, operation, OPERATIONS)


@pytest.mark.parametrize("query", DIRECT)
def test_hot_documents_take_the_direct_path(query):
    assert direct_plan(query) is not None


@pytest.mark.parametrize("query", NOT_DIRECT)
def test_other_documents_are_left_to_graphql_core(query):
    assert direct_plan(query) is None


def via_graphql_core(query: str, field: str) -> str:
    """The same document with a directive after its root ``field``."""
    assert query.count(field + " ") == 1
    return query.replace(field + " ", field + " @include(if: true) ", 1)


def same_answer(direct: tuple[int, dict[str, Any]], core: tuple[int, dict[str, Any]]) -> None:
    assert direct == core
    assert direct[1].get("errors") or direct[1].get("data")


async def test_me_is_graphql_cores_answer_for_each_caller(client):
    access, refresh = await client.tokens()
    gone_access, gone_refresh = await client.tokens()
    await client.post("mutation { logout }", token=gone_refresh)
    query = "query Me { who: me { id mail: email confirmed createdAt updatedAt } }"
    for token in (access, refresh, gone_access, "not-a-token", None):
        direct = await client.post(query, token=token)
        same_answer(direct, await client.post(via_graphql_core(query, "who: me"), token=token))
    assert (await client.post(query, token=access))[1]["data"]["who"]["id"]


async def test_refresh_and_renew_are_graphql_cores_answers(client):
    access, refresh = await client.tokens()
    for query, field in (
        ("mutation { refresh }", "refresh"),
        ("mutation { renew { accessToken expiresIn } }", "renew"),
    ):
        for token in (access, "not-a-token", None):  # refused: the same errors
            direct = await client.post(query, token=token)
            same_answer(direct, await client.post(via_graphql_core(query, field), token=token))
    # Accepted: the same shape (the tokens themselves are new each time).
    status, body = await client.post("mutation { refresh }", token=refresh)
    assert status == 200 and set(body) == {"data"}
    assert jwt.get_unverified_header(body["data"]["refresh"])["typ"] == "JWT"
    _, core = await client.post(via_graphql_core("mutation { refresh }", "refresh"), token=refresh)
    assert set(core["data"]) == {"refresh"}
    status, body = await client.post("mutation { renew { expiresIn accessToken } }", token=refresh)
    assert status == 200 and list(body["data"]["renew"]) == ["expiresIn", "accessToken"]
    assert body["data"]["renew"]["expiresIn"] == 900


async def test_spent_refresh_token_error_is_graphql_cores(client):
    _, refresh = await client.tokens()
    query = "mutation { renew { refreshToken } }"
    _, body = await client.post(query, token=refresh)
    _, body = await client.post(query, token=body["data"]["renew"]["refreshToken"])
    assert "errors" not in body
    # A spent token, past its child's grace: the session ends; both say Unauthorized.
    direct = await client.post(query, token=refresh)
    same_answer(direct, await client.post(via_graphql_core(query, "renew"), token=refresh))
    assert direct[1]["data"] is None


class CountingOperation:
    """A `me` that answers a given value or raises, and counts its calls."""

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.calls = 0

    async def __call__(self, _ctx: RequestContext) -> Any:
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


USER = {
    "id": "u-1",
    "email": "a@example.com",
    "confirmed": True,
    "createdAt": "2026-01-01T00:00:00.000Z",  # not a datetime: DateTime refuses it
    "updatedAt": None,
}


@pytest.mark.parametrize(
    ("query", "outcome"),
    [
        ("{ me { id email } }", USER),  # a plain success
        ("{ me { id email confirmed } }", {"id": "u-1", "email": None, "confirmed": True}),
        ("{ me { id updatedAt } }", USER),  # null in a non-null field
        ("{ me { createdAt } }", USER),  # a value the scalar cannot serialize
        ("{ me { id } }", "not an object"),
        ("{ me { id } }", Unauthorized()),  # a domain error
        ("{ me { id } }", RuntimeError("boom")),  # an unexpected one
        ("mutation { refresh }", None),  # null for String!
        ("mutation { refresh }", ["a list"]),
    ],
)
async def test_every_outcome_is_answered_as_graphql_core_would_and_runs_once(
    query, outcome, services
):
    operation = CountingOperation(outcome)
    field = "me" if "me" in query else "refresh"
    root = "Query" if field == "me" else "Mutation"
    operations = {name: dict(fields) for name, fields in OPERATIONS.items()}
    operations[root][field] = operation
    schema = build_executable_schema(
        {
            name: {f: graphql_resolver(op) for f, op in ops.items()}
            for name, ops in operations.items()
        }
    )
    document = parse(query)
    operation_node = get_operation_ast(document)
    assert operation_node is not None
    direct = plan(schema, document, operation_node, operations)
    assert direct is not None
    context = RequestContext(services, None, ClientInfo(), "req-1")

    result = await direct.run(context)
    assert operation.calls == 1  # an error is replayed, the operation never runs again
    expected = await executed(schema, document, context_value=context)
    assert result.data == expected.data
    assert [e.formatted for e in result.errors or []] == [
        e.formatted for e in expected.errors or []
    ]
    assert (result.errors is None) == (outcome is USER and "createdAt" not in query
                                       and "updatedAt" not in query)  # fmt: skip


async def test_an_operation_name_the_document_lacks_is_refused_as_before(client):
    body = json.dumps({"query": "mutation A { refresh }", "operationName": "B"})
    response = await client.raw(body=body, headers={"Content-Type": "application/json"})
    assert response.code == 400
    assert "Unknown operation named 'B'" in json.loads(response.body)["errors"][0]["message"]
