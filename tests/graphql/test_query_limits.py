"""GraphQL limits: each a validation error before any resolver runs; introspection and
suggestions by environment; error messages only ever quote an excerpt."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from authsvc.settings import load_settings
from tests.helpers import LOGIN, PASSWORD, new_email
from tests.hostile_documents import ISSUE_11_DOCUMENT, nested_fragments


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


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail, rather than hang, when the block takes longer than ``seconds``: the checks
    run on the test's own event loop, so no client timeout could fire meanwhile."""

    def expire(*_: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def unauthorized(status, body) -> bool:
    """Accepted and executed: ``me`` without a token."""
    return status == 200 and body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.settings(graphql_max_depth=2)
async def test_depth_through_nested_and_shared_fragments(client):
    # R is spread twice and E reached through both paths: worked out once, at depth 3.
    query = (
        'mutation { login(email: "a@b.io", password: "p") { ...Q } } '
        "fragment Q on MutationResponse { status ...R ...R } "
        "fragment R on MutationResponse { ...E } "
        "fragment E on MutationResponse { errors { ...P } } "
        "fragment P on YupError { path }"
    )
    status, body = await client.post(query)
    assert validation_error(status, body, "Query depth 3 exceeds the limit of 2")
    with within(2):
        status, body = await client.post(nested_fragments(5))  # depth 2: me { id }
    assert unauthorized(status, body)
    with within(2):  # deep as written, 2 as expanded: only the field count refuses it
        status, body = await client.post(nested_fragments(90))
    assert validation_error(status, body, f"{1 + 2**90} fields exceed the limit of 100.")
    assert len(body["errors"]) == 1


@pytest.mark.settings(graphql_max_aliases=4)
async def test_aliases_through_nested_and_shared_fragments(client):
    # Counted as executed: C twice (through A and B) is 2 * 2 aliases, plus A's own.
    query = (
        "{ me { ...A ...B } } fragment A on User { x: id ...C } "
        "fragment B on User { ...C } fragment C on User { y: id z: email }"
    )
    status, body = await client.post(query)
    assert validation_error(status, body, "5 aliases exceed the limit of 4.")
    allowed = query.replace("x: id ", "")  # 4 aliases
    assert unauthorized(*await client.post(allowed))


async def test_an_exponential_alias_blow_up_is_refused_with_its_real_count(client):
    # 3.5 KB; 2^90 aliases once expanded, counted without expanding anything.
    with within(2):
        status, body = await client.post(nested_fragments(90, leaf="a: id"))
    assert validation_error(status, body, f"{2**90} aliases exceed the limit of 10.")
    with within(2):
        status, body = await client.post(nested_fragments(60, spreads=4, leaf="a: id"))
    assert validation_error(status, body, f"{4**60} aliases exceed the limit of 10.")
    with within(2):
        status, body = await client.post(nested_fragments(45, leaf="a: id", inline=True))
    assert validation_error(status, body, f"{2**45} aliases exceed the limit of 10.")


@pytest.mark.settings(graphql_max_root_fields=5)
async def test_root_fields_through_nested_fragments(client):
    query = (
        "query { ...R } fragment R on Query { ...S ...S ...S } "
        "fragment S on Query { ...T ...T } fragment T on Query { __typename }"
    )
    status, body = await client.post(query)
    assert validation_error(status, body, "6 root fields exceed the limit of 5.")
    doubling = " ".join(f"fragment Q{i} on Query {{ ...Q{i + 1} ...Q{i + 1} }}" for i in range(90))
    with within(2):
        status, body = await client.post(
            f"query {{ ...Q0 }} {doubling} fragment Q90 on Query {{ __typename }}"
        )
    assert validation_error(status, body, f"{2**90} root fields exceed the limit of 5.")


async def test_the_document_of_issue_11_is_answered_at_once(client):
    with within(2):  # 2^90 copies of `id` once expanded: refused at once
        status, body = await client.post(ISSUE_11_DOCUMENT)
    assert validation_error(status, body, f"{1 + 2**90} fields exceed the limit of 100.")
    # A cycle at the end of the chain: refused by NoFragmentCycles, walked once here.
    with within(2):
        status, body = await client.post(nested_fragments(90, leaf="...F0"))
    assert validation_error(status, body, "Cannot spread fragment 'F0' within itself")


@pytest.mark.settings(graphql_max_tokens=5000, graphql_max_fields=10_000)
async def test_limits_are_checked_before_the_standard_rules(client):
    # OverlappingFieldsCanBeMerged compares same-named siblings pairwise: 300 logins
    # cost it about 2 s here. The limits, linear, refuse the document first.
    logins = 'login(email: "", password: "") { errors { path } } ' * 300
    with within(1):
        status, body = await client.post(f"mutation {{ {logins}}}")
    assert validation_error(status, body, "300 root fields exceed the limit of 10.")
    assert len(body["errors"]) == 1


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


async def test_fields_are_counted_at_every_level_as_expanded(client):
    """GRAPHQL_MAX_FIELDS (100): also the bound of the pairwise overlapping-fields rule
    of graphql-core, which 990 `id`s kept busy for 150 ms of the event loop."""
    many = "query { me { " + "id " * 990 + "} }"
    _, body = await client.post(many)
    assert body["errors"][0]["message"] == "991 fields exceed the limit of 100."
    spread = "query { me { ...A ...A } } fragment A on User { " + "id " * 50 + "}"
    _, body = await client.post(spread)
    assert body["errors"][0]["message"] == "101 fields exceed the limit of 100."
    _, body = await client.post("query { me { " + "id " * 99 + "} }")
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"  # within the limit


@pytest.mark.settings(graphql_introspection=True)
async def test_introspection_fields_do_not_count_against_the_field_limit(client):
    from graphql import get_introspection_query

    _, body = await client.post(get_introspection_query())
    assert "errors" not in body, body["errors"][:1]
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
