"""Locust users of authsvc: register once, log in, then use the tokens the way a client
application does: mostly `me`, now and then a refresh or a rotating renewal, with think
time; log in again when the session ends.

    make loadtest LOADTEST_HOST=http://127.0.0.1:3000      # headless, bounded in time
    locust -f loadtests/locustfile.py --host https://auth.staging.example.com   # web UI

Every request comes from this machine's address: against a deployment with the default
rate limits, keep registrations per address (RATE_LIMIT_REGISTER_PER_IP) above the
number of users, or run the workers from several machines.
"""

from __future__ import annotations

import json
import uuid

from locust import HttpUser, between, task

PASSWORD = "locust passphrase 2026"  # noqa: S105 - the load test accounts' own
LOGIN = (
    "mutation Login($e: String!, $p: String!) { login(email: $e, password: $p) "
    "{ status tokens { accessToken refreshToken } } }"
)
REGISTER = (
    "mutation Register($e: String!, $p: String!) { register(email: $e, password: $p) { status } }"
)


class AuthServiceUser(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.email = f"locust-{uuid.uuid4().hex[:16]}@example.com"
        self.graphql("register", REGISTER, {"e": self.email, "p": PASSWORD})
        self.log_in()

    def log_in(self) -> None:
        data = self.graphql("login", LOGIN, {"e": self.email, "p": PASSWORD})
        tokens = (data or {}).get("login", {}).get("tokens") or {}
        self.access = tokens.get("accessToken", "")
        self.refresh_token = tokens.get("refreshToken", "")

    @task(10)
    def me(self) -> None:
        if self.graphql("me", "{ me { id email } }", token=self.access) is None:
            self.log_in()

    @task(3)
    def refresh(self) -> None:
        data = self.graphql("refresh", "mutation { refresh }", token=self.refresh_token)
        if data is None:
            self.log_in()
        else:
            self.access = data["refresh"]

    @task(1)
    def renew(self) -> None:
        data = self.graphql(
            "renew", "mutation { renew { accessToken refreshToken } }", token=self.refresh_token
        )
        if data is None:
            self.log_in()
        else:
            self.access = data["renew"]["accessToken"]
            self.refresh_token = data["renew"]["refreshToken"]

    def graphql(
        self, name: str, query: str, variables: dict | None = None, token: str = ""
    ) -> dict | None:
        """POST one operation; its data, or None when the session has ended (the
        caller logs in again). Anything else unexpected is a failure in the stats."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"query": query, "variables": variables or {}}
        with self.client.post(
            "/graphql", json=body, headers=headers, name=name, catch_response=True
        ) as response:
            try:
                answer = json.loads(response.text)
            except ValueError:
                response.failure(f"not JSON (HTTP {response.status_code})")
                return None
            errors = answer.get("errors") or []
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return None
            if errors and errors[0].get("extensions", {}).get("code") == "UNAUTHENTICATED":
                response.success()  # the session ended (expired, revoked): log in again
                return None
            if errors:
                response.failure(errors[0].get("message", "GraphQL error"))
                return None
            return answer.get("data")
