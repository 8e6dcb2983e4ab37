"""Small helpers the tests share: a GraphQL client over the test server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tornado.tcpclient import TCPClient

from authsvc.core.validation import normalize_email
from authsvc.stores import sqlite

REGISTER = """mutation Register($email: String!, $password: String!) {
  register(email: $email, password: $password) { status errors { path message } payload }
}"""
LOGIN = """mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { status errors { path message } payload }
}"""
ME = "query Me { me { id email confirmed createdAt updatedAt } }"
REFRESH = "mutation Refresh { refresh }"
LOGOUT = "mutation Logout { logout }"
RENEW = "mutation Renew { renew { accessToken refreshToken expiresIn tokenType } }"
SESSIONS = "query Sessions { sessions { id createdAt lastUsedAt expiresAt userAgent ip current } }"
LOGOUT_ALL = "mutation LogoutAll { logoutAll }"
REVOKE_SESSION = "mutation Revoke($id: ID!) { revokeSession(id: $id) }"
CHANGE_PASSWORD = """mutation Change($current: String!, $new: String!) {
  changePassword(currentPassword: $current, newPassword: $new) {
    status errors { path message } payload
  }
}"""

PASSWORD = "correct horse battery"


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


class GraphQLClient:
    """POSTs GraphQL to the app under test; returns (HTTP status, decoded JSON body)."""

    def __init__(self, http_client: Any) -> None:
        self.http = http_client

    async def raw(self, method: str = "POST", path: str = "/graphql", **kwargs: Any):
        """A request as given, except that a POST without a Content-Type says JSON (as
        every client of /graphql does; Tornado's client would say a form)."""
        if method == "POST":
            headers = dict(kwargs.get("headers") or {})
            if not any(name.lower() == "content-type" for name in headers):
                kwargs["headers"] = {"Content-Type": "application/json", **headers}
        response = await self.http.fetch(path, method=method, raise_error=False, **kwargs)
        return response

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        response = await self.answer(query, variables, token, headers)
        return response.code, json.loads(response.body)

    async def answer(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The whole HTTP response (status, headers, body) to one GraphQL POST."""
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        body = json.dumps({"query": query, "variables": variables or {}})
        return await self.raw(body=body, headers=all_headers)

    async def register(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        status, body = await self.post(REGISTER, {"email": email, "password": password})
        assert status == 200, body
        return body["data"]["register"]

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        status, body = await self.post(LOGIN, {"email": email, "password": password})
        assert status == 200, body
        return body["data"]["login"]

    async def tokens(self, email: str | None = None) -> tuple[str, str]:
        """Register (if needed) and log in; returns (access token, refresh token)."""
        email = email or new_email()
        await self.register(email)
        result = await self.login(email)
        assert result["status"] == 200, result
        payload = json.loads(result["payload"])
        return payload["access_token"], payload["refresh_token"]


async def raw_post(
    port: int, body: bytes, headers: bytes = b"", source_ip: str | None = None
) -> tuple[int, dict[str, Any]]:
    """A POST to /graphql written byte for byte (Tornado's client adds a Content-Type of
    its own when there is none), from ``source_ip`` if given; (status, decoded body)."""
    stream = await TCPClient().connect("127.0.0.1", port, source_ip=source_ip)
    try:
        await stream.write(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip
        answer = await stream.read_until_close()
    finally:
        stream.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload)


def error_code(body: dict[str, Any]) -> str | None:
    """The code of the first error of a GraphQL answer, None if it has none."""
    errors = body.get("errors") or [{}]
    return errors[0].get("extensions", {}).get("code")


def unauthorized(body: dict[str, Any], field: str) -> bool:
    """The Node service's answer for a missing or bad token, with our code."""
    return (
        body.get("data") is None
        and len(body["errors"]) == 1
        and body["errors"][0]["message"] == "Unauthorized"
        and body["errors"][0]["path"] == [field]
        and body["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}
    )


def open_migrated_sqlite(io_loop: Any, path: Path) -> sqlite.SQLiteDatabase:
    """An embedded database file with the current schema (fixtures are sync)."""
    db = io_loop.run_sync(lambda: sqlite.SQLiteDatabase.open(str(path), 3.0))
    io_loop.run_sync(lambda: sqlite.migrate(db, email_rule=normalize_email))
    return db
