"""Property-based fuzzing of the HTTP edge: random methods, paths, headers, bodies,
documents and variables. Never a 500, never a stack trace, and a refused request never
changes a user or a session."""

from __future__ import annotations

import http.client
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import EXAMPLES, assert_no_leak, refused
from tests.helpers import CHANGE_PASSWORD, LOGIN, LOGOUT, ME, REFRESH, REGISTER, RENEW, SESSIONS
from tests.hostile_documents import nested_fragments

KNOWN = [REGISTER, LOGIN, ME, REFRESH, LOGOUT, RENEW, SESSIONS, CHANGE_PASSWORD,
         "{ __schema { types { name } } }", "mutation { logoutAll }",
         'mutation { revokeSession(id: "x") }']  # fmt: skip

printable = st.characters(min_codepoint=32, max_codepoint=126)
header_text = st.text(alphabet=printable, max_size=60)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
mutated = st.builds(
    lambda doc, at, text: doc[:at] + text + doc[at:],
    st.sampled_from(KNOWN),
    st.integers(0, 120),
    st.text(max_size=12),
)
#: Leaves of nested-fragment chains, with the aliases and fields each holds (None:
#: closes a cycle).
LEAVES = {"id": (0, 1), "id email": (0, 2), "__typename": (0, 1), "a: id": (1, 1),
          "a: id b: email": (2, 2), "...F0": None}  # fmt: skip
#: Chains of fragments that each spread the next 1-4 times (issue 11): a few KB that
#: stand for up to 4^130 fields once expanded.
nested = st.builds(
    lambda levels, spreads, leaf, inline: (nested_fragments(levels, spreads, leaf, inline=inline),
                                           levels, spreads, leaf),
    st.integers(0, 130), st.integers(1, 4), st.sampled_from(sorted(LEAVES)), st.booleans(),
)  # fmt: skip
documents = st.one_of(
    st.sampled_from(KNOWN), mutated, st.text(max_size=150), nested.map(lambda case: case[0])
)
graphql_bodies = st.fixed_dictionaries(
    {"query": documents},
    optional={
        "variables": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"email": st.text(max_size=40), "password": st.text(max_size=80)},
            ),
        ),
        "operationName": st.one_of(st.none(), st.text(max_size=12), st.integers()),
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(json.dumps),
    graphql_bodies.map(json.dumps),
    st.lists(graphql_bodies, max_size=3).map(json.dumps),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.one_of(header_text, header_text.map(lambda t: "Bearer " + t)),
        "Content-Type": st.one_of(st.just("application/json"), header_text),
        "X-Forwarded-For": header_text,
        "X-Real-IP": header_text,
        "X-Request-ID": header_text,
        "X-Auth-Require-Email-Domain": header_text,
    },
)
paths = st.sampled_from(
    ["/graphql", "/graphql?query=%7Bme%7Bid%7D%7D", "/graphql?query=mutation%7Blogout%7D",
     "/graphql?variables=%7B", "/.well-known/jwks.json", "/.well-known/openid-configuration",
     "/introspect", "/", "/nope", "/auth", "/auth?confirmed=true", "/auth?bogus=1"]
)  # fmt: skip
methods = st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "OPTIONS"])


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(method=methods, path=paths, headers=headers, body=bodies)
def test_random_requests(fuzz_target, method, path, headers, body):
    before = fuzz_target.fingerprint()
    conn = http.client.HTTPConnection("127.0.0.1", fuzz_target.service.port, timeout=30)
    try:
        conn.request(method, path, body=body if method != "GET" else None, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    assert response.status < 500, raw[:300]
    text = raw.decode("utf-8", errors="replace")
    assert_no_leak(text)
    parsed = json.loads(text) if text else None
    # OPTIONS: a CORS preflight of /graphql (204) or a method a route lacks (405).
    if method != "OPTIONS" or response.status not in (204, 405):
        assert parsed is not None
    if isinstance(parsed, list):  # a batch: each operation on its own
        return
    if refused(response.status, parsed):
        assert fuzz_target.fingerprint() == before


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(case=nested)
def test_nested_fragments_are_answered_at_once_with_their_expanded_counts(fuzz_target, case):
    query, levels, spreads, leaf = case
    # A short timeout: the checks are linear, so any of these is answered in milliseconds.
    conn = http.client.HTTPConnection("127.0.0.1", fuzz_target.service.port, timeout=5)
    try:
        body = json.dumps({"query": query})
        conn.request("POST", "/graphql", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
    finally:
        conn.close()
    messages = [error["message"] for error in answer["errors"]]
    codes = {error["extensions"]["code"] for error in answer["errors"]}
    if codes == {"GRAPHQL_PARSE_FAILED"}:  # longer than GRAPHQL_MAX_TOKENS
        assert response.status == 400 and "more than 1000 tokens" in messages[0]
        return
    counts = LEAVES[leaf]
    if counts is None:
        assert response.status == 400
        assert any(m.startswith("Cannot spread fragment 'F0' within itself") for m in messages)
        return
    # Counted as expanded, not as written: `me` and every copy of the leaf.
    aliases, fields = counts[0] * spreads**levels, 1 + counts[1] * spreads**levels
    expected = []
    if aliases > 10:
        expected.append(f"{aliases} aliases exceed the limit of 10.")
    if fields > 100:
        expected.append(f"{fields} fields exceed the limit of 100.")
    if expected:
        assert response.status == 400 and messages == expected, answer
    else:  # accepted, and `me` without a token is Unauthorized
        assert response.status == 200 and codes == {"UNAUTHENTICATED"}, answer
