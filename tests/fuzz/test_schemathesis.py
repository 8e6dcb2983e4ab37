"""Schemathesis against the running server's GraphQL schema (loaded by introspection,
which development mode allows): every operation, with generated arguments. The checks
are this project's: no 5xx, no stack trace, nothing changed by a refused request.
(Schemathesis' own not_a_server_error counts every GraphQL error as a failure, and
`Unauthorized` is this API's contract. Its pytest `from_fixture` loader does not run
under pytest 9, so the operations are driven with Hypothesis here.)"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from tests.fuzz.conftest import EXAMPLES, assert_no_leak, refused


def test_generated_operations(fuzz_target):
    schema = schemathesis.graphql.from_url(f"{fuzz_target.base_url}/graphql")
    results = list(schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), results
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) >= 10  # every Query and Mutation field
    for operation in operations:
        fuzz(operation, fuzz_target)


def fuzz(operation, fuzz_target) -> None:
    @settings(max_examples=max(5, EXAMPLES // 10), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy())
    def check(case):
        before = fuzz_target.fingerprint()
        response = case.call(headers={"Authorization": "Bearer not-a-token"})
        assert response.status_code < 500, (operation.label, response.text[:300])
        assert_no_leak(response.text)
        if refused(response.status_code, json.loads(response.text)):
            assert fuzz_target.fingerprint() == before, operation.label

    check()
