"""The pages behind the mails' links, on a real `authsvc serve` over HTTP, with the mails
taken from a real SMTP server: a GET or HEAD spends nothing, the form's POST spends the
token once and answers 303 to a page without it, and every answer carries the headers
that keep the token in the URL from leaking."""

from __future__ import annotations

import http.client
import json
import re
import time
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlencode, urlsplit

from authsvc.core.lifecycle import MAX_TOKEN_CHARS
from tests.e2e.processes import ServiceProcess, ThrowawayMariaDB, free_port
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import LOGIN, PASSWORD, REFRESH, REGISTER, new_email

REQUEST_PASSWORD_RESET = """mutation Reset($email: String!) {
  requestPasswordReset(email: $email) { status errors { path message } payload }
}"""
REQUEST_EMAIL_CHANGE = """mutation Change($email: String!, $password: String!) {
  requestEmailChange(newEmail: $email, currentPassword: $password) {
    status errors { path message } payload
  }
}"""
NEW_PASSWORD = "a quite different secret"
HIDDEN_TOKEN = re.compile(r'<input type="hidden" name="token" value="([^"]*)">')


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str

    @property
    def text(self) -> str:
        """The page's text, tags dropped, entities decoded."""
        return unescape(re.sub(r"<[^>]+>", " ", self.body))


def fetch(
    service: ServiceProcess,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request as given, redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read().decode())
    finally:
        connection.close()


def post_form(service: ServiceProcess, path: str, fields: dict[str, str], **headers: str) -> Answer:
    return fetch(
        service, "POST", path, urlencode(fields).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", **headers},
    )  # fmt: skip


def page_target(link: str) -> tuple[str, str]:
    """The path and query of a mail's link (to this server), and its token."""
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}", parse_qs(parts.query)["token"][0]


def login_status(service: ServiceProcess, email: str, password: str) -> int:
    _, body = service.graphql(LOGIN, {"email": email, "password": password})
    return int(body["data"]["login"]["status"])


def assert_protected(answer: Answer) -> None:
    csp = answer.headers["Content-Security-Policy"]
    for directive in (
        "default-src 'none'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"
    ):  # fmt: skip
        assert directive in csp, csp
    assert re.search(r"style-src 'sha256-[A-Za-z0-9+/=]+'", csp), csp
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_confirm_page_get_and_head_spend_nothing_and_the_post_confirms_once(tmp_path, smtp_sink):
    env = {"BCRYPT_ROUNDS": "4", "SMTP_URL": smtp_sink.url, "EMAIL_CONFIRMATION": "true"}
    service = ServiceProcess(tmp_path, env)
    try:
        email = new_email()
        _, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        assert body["data"]["register"]["status"] == 201
        target, token = page_target(smtp_sink.link(smtp_sink.wait_for(email)))
        assert target.startswith("/confirm-email?token=")

        for _ in range(3):  # a scanner, a preview, the person
            shown = fetch(service, "GET", target)
            assert shown.status == 200
            assert_protected(shown)
            assert HIDDEN_TOKEN.findall(shown.body) == [token]
            assert '<form method="post" action="confirm-email">' in shown.body
        head = fetch(service, "HEAD", target)
        assert head.status == 200 and head.body == ""
        assert login_status(service, email, PASSWORD) == 401  # still unconfirmed

        confirmed = post_form(service, "/confirm-email", {"token": token})
        assert confirmed.status == 303
        assert_protected(confirmed)
        location = confirmed.headers["Location"]
        assert location == "confirm-email?done=1" and token not in location
        done = fetch(service, "GET", "/confirm-email?done=1")
        assert done.status == 200 and "Your email address is confirmed" in done.text
        assert_protected(done)
        assert login_status(service, email, PASSWORD) == 200

        again = post_form(service, "/confirm-email", {"token": token})
        assert again.status == 400
        assert "This link is invalid or has expired." in again.text
        assert_protected(again)
        assert "Traceback" not in again.body
    finally:
        assert service.terminate() == 0


def reset_through_the_page(service: ServiceProcess, smtp_sink, email: str) -> None:
    """requestPasswordReset, then the page: GETs and a HEAD spend nothing, differing
    passwords and a refused one change nothing, the right POST resets once."""
    _, body = service.graphql(REQUEST_PASSWORD_RESET, {"email": email})
    assert body["data"]["requestPasswordReset"]["status"] == 200
    target, token = page_target(smtp_sink.link(smtp_sink.wait_for(email)))
    assert target.startswith("/reset-password?token=")
    for _ in range(3):
        shown = fetch(service, "GET", target)
        assert shown.status == 200 and HIDDEN_TOKEN.findall(shown.body) == [token]
        assert 'name="new_password"' in shown.body and 'name="repeat_password"' in shown.body
    assert fetch(service, "HEAD", target).status == 200

    differ = post_form(service, "/reset-password", {
        "token": token, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD + "!",
    })  # fmt: skip
    assert differ.status == 400 and "The two passwords differ" in differ.text
    assert HIDDEN_TOKEN.findall(differ.body) == [token]  # the form again, the token kept
    short = post_form(service, "/reset-password", {
        "token": token, "new_password": "short", "repeat_password": "short",
    })  # fmt: skip
    assert short.status == 400 and "The new password must be at least 8" in short.text
    assert HIDDEN_TOKEN.findall(short.body) == [token]
    assert login_status(service, email, PASSWORD) == 200  # nothing changed yet

    reset = post_form(service, "/reset-password", {
        "token": token, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD,
    })  # fmt: skip
    assert reset.status == 303, reset.text
    assert reset.headers["Location"] == "reset-password?done=1"
    assert_protected(reset)
    done = fetch(service, "GET", "/" + reset.headers["Location"])
    assert done.status == 200 and "Your password was changed" in done.text

    other = "yet another secret"
    again = post_form(
        service,
        "/reset-password",
        {"token": token, "new_password": other, "repeat_password": other},
    )
    assert again.status == 400 and "This link is invalid or has expired." in again.text


def check_reset(service: ServiceProcess, smtp_sink) -> None:
    email = new_email()
    _, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
    assert body["data"]["register"]["status"] == 201
    _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
    earlier = json.loads(body["data"]["login"]["payload"])["refresh_token"]

    reset_through_the_page(service, smtp_sink, email)

    assert login_status(service, email, NEW_PASSWORD) == 200
    assert login_status(service, email, PASSWORD) == 401
    _, body = service.graphql(REFRESH, token=earlier)
    assert body["data"] is None and body["errors"][0]["message"] == "Unauthorized"
    smtp_sink.wait_for(email)  # "your password was changed"


def test_reset_page_on_the_embedded_store(tmp_path, smtp_sink):
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4", "SMTP_URL": smtp_sink.url})
    try:
        check_reset(service, smtp_sink)
    finally:
        assert service.terminate() == 0


def test_reset_page_on_mariadb_and_redis(tmp_path, smtp_sink, mysql_server, redis_server):
    port = free_port()
    env = production_env(mysql_server, redis_server) | {
        "SMTP_URL": smtp_sink.url,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env, port=port)
    try:
        check_reset(service, smtp_sink)
    finally:
        assert service.terminate() == 0


def test_email_change_page(tmp_path, smtp_sink):
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4", "SMTP_URL": smtp_sink.url})
    try:
        email, new = new_email(), new_email()
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        access = json.loads(body["data"]["login"]["payload"])["access_token"]
        _, body = service.graphql(
            REQUEST_EMAIL_CHANGE, {"email": new, "password": PASSWORD}, token=access
        )
        assert body["data"]["requestEmailChange"]["status"] == 200, body
        target, token = page_target(smtp_sink.link(smtp_sink.wait_for(new)))
        assert target.startswith("/confirm-email-change?token=")
        for _ in range(2):
            assert fetch(service, "GET", target).status == 200
        assert login_status(service, email, PASSWORD) == 200  # not changed by a GET

        changed = post_form(service, "/confirm-email-change", {"token": token})
        assert changed.status == 303
        assert changed.headers["Location"] == "confirm-email-change?done=1"
        assert login_status(service, new, PASSWORD) == 200
        assert login_status(service, email, PASSWORD) == 401
        again = post_form(service, "/confirm-email-change", {"token": token})
        assert again.status == 400 and "This link is invalid or has expired." in again.text
    finally:
        assert service.terminate() == 0


def test_refusals_before_any_token_is_looked_at(tmp_path, smtp_sink):
    service = ServiceProcess(
        tmp_path, {"BCRYPT_ROUNDS": "4", "SMTP_URL": smtp_sink.url, "MAX_BODY_BYTES": "2048"}
    )
    try:
        host = f"127.0.0.1:{service.port}"
        form = {"token": "x" * 43}
        # A form from another site: refused, whatever the token.
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": f"http://{host}.evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        ):
            foreign = post_form(service, "/confirm-email", form, **headers)
            assert foreign.status == 403, headers
            assert_protected(foreign)
        # Our own pages' forms: Origin ours, or null (the no-referrer policy's), or none.
        for headers in (
            {"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
            {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
            {},
        ):
            own = post_form(service, "/confirm-email", form, **headers)
            assert own.status == 400 and "invalid or has expired" in own.text, headers

        for content_type in ("application/json", "text/plain", "multipart/form-data; boundary=x"):
            other = fetch(
                service, "POST", "/confirm-email", b'{"token": "x"}',
                {"Content-Type": content_type},
            )  # fmt: skip
            assert other.status == 415, content_type
            assert_protected(other)
        big = post_form(service, "/reset-password", {"token": "t", "new_password": "p" * 4096})
        assert big.status == 413

        oversized = "A" * (MAX_TOKEN_CHARS + 1)
        shown = fetch(service, "GET", f"/reset-password?token={oversized}")
        assert shown.status == 400 and "This link is invalid or has expired." in shown.text
        assert oversized not in shown.body and "<form" not in shown.body
        assert_protected(shown)
        posted = post_form(service, "/confirm-email", {"token": oversized})
        assert posted.status == 400 and oversized not in posted.body

        missing = fetch(service, "GET", "/confirm-email")
        assert missing.status == 400 and "This link is incomplete." in missing.text
        # The hidden field holds the token as text, whatever it is.
        odd = fetch(service, "GET", "/confirm-email?" + urlencode({"token": '"><b>x'}))
        assert odd.status == 200 and "<b>x" not in odd.body
        assert HIDDEN_TOKEN.findall(odd.body) == ["&quot;&gt;&lt;b&gt;x"]
        bad_query = fetch(service, "GET", "/confirm-email?token=%ff")
        assert bad_query.status == 400 and "Traceback" not in bad_query.body
        assert_protected(bad_query)
        put = fetch(service, "PUT", "/confirm-email", b"")
        assert put.status == 405 and put.headers["Allow"] == "GET, HEAD, POST"
        assert_protected(put)
    finally:
        assert service.terminate() == 0


def test_pages_are_not_routed_when_the_links_go_to_the_product(tmp_path, smtp_sink):
    env = {
        "BCRYPT_ROUNDS": "4",
        "SMTP_URL": smtp_sink.url,
        "EMAIL_LINK_BASE_URL": "https://app.example.com/account",
    }
    service = ServiceProcess(tmp_path, env)
    try:
        assert fetch(service, "GET", "/confirm-email?token=x").status == 404
        assert fetch(service, "GET", "/reset-password?token=x").status == 404
    finally:
        assert service.terminate() == 0


def graphql_from(service: ServiceProcess, client: str, query: str, variables: dict) -> dict:
    """A GraphQL POST that the trusted proxy (this machine) forwards for ``client``."""
    answer = fetch(
        service, "POST", "/graphql", json.dumps({"query": query, "variables": variables}).encode(),
        {"Content-Type": "application/json", "X-Forwarded-For": client},
    )  # fmt: skip
    return dict(json.loads(answer.body))


def test_the_reset_post_is_the_client_s_as_graphql_sees_it(tmp_path, smtp_sink):
    """The page resolves the client's address as /graphql does (X-Forwarded-For from a
    trusted proxy): its reset clears that address's failed logins of the account, as
    the resetPassword mutation would, and no other address's."""
    env = {
        "BCRYPT_ROUNDS": "4",
        "SMTP_URL": smtp_sink.url,
        "TRUSTED_PROXIES": "127.0.0.1",
        "RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT": "3/900",
    }
    service = ServiceProcess(tmp_path, env)
    try:
        email, client, other = new_email(), "203.0.113.9", "198.51.100.7"
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        for address in (client, other):
            for _ in range(3):
                graphql_from(service, address, LOGIN, {"email": email, "password": "wrong one"})
        for address in (client, other):
            body = graphql_from(service, address, LOGIN, {"email": email, "password": PASSWORD})
            assert body["data"]["login"]["status"] == 429, body

        _, body = service.graphql(REQUEST_PASSWORD_RESET, {"email": email})
        _, token = page_target(smtp_sink.link(smtp_sink.wait_for(email)))
        reset = post_form(service, "/reset-password", {
            "token": token, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD,
        }, **{"X-Forwarded-For": client})  # fmt: skip
        assert reset.status == 303

        body = graphql_from(service, client, LOGIN, {"email": email, "password": NEW_PASSWORD})
        assert body["data"]["login"]["status"] == 200, body
        body = graphql_from(service, other, LOGIN, {"email": email, "password": NEW_PASSWORD})
        assert body["data"]["login"]["status"] == 429, body
    finally:
        assert service.terminate() == 0


def test_the_pages_during_a_database_outage(tmp_path, smtp_sink, mysql_server, redis_server):
    """The GET needs no store, so the page shows while the database is down; the POST
    is answered 503 with Retry-After and a page that says to try again, and the
    same link works once the database is back."""
    database = ThrowawayMariaDB(tmp_path)
    database.start()
    port = free_port()
    env = production_env(mysql_server, redis_server) | {
        "DB_HOST": "127.0.0.1", "DB_PORT": str(database.port), "DB_USERNAME": "root",
        "DB_PASSWORD": "", "DB_NAME": "mysql", "STORE_TIMEOUT_S": "1",
        "DB_CONNECT_TIMEOUT_S": "1", "SMTP_URL": smtp_sink.url,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }  # fmt: skip
    try:
        migrate(tmp_path, env)
        service = ServiceProcess(tmp_path, env, port=port)
        try:
            email = new_email()
            service.graphql(REGISTER, {"email": email, "password": PASSWORD})
            service.graphql(REQUEST_PASSWORD_RESET, {"email": email})
            target, token = page_target(smtp_sink.link(smtp_sink.wait_for(email)))
            form = {"token": token, "new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD}

            database.stop()
            shown = fetch(service, "GET", target)
            assert shown.status == 200 and HIDDEN_TOKEN.findall(shown.body) == [token]
            down = post_form(service, "/reset-password", form)
            assert down.status == 503 and down.headers["Retry-After"] == "1"
            assert "unavailable for a moment" in down.text and "Traceback" not in down.body
            assert_protected(down)

            database.start()
            deadline = time.monotonic() + 30
            while (answer := post_form(service, "/reset-password", form)).status == 503:
                assert time.monotonic() < deadline, "the database never came back"
                time.sleep(0.5)
            assert answer.status == 303, answer.text
            assert login_status(service, email, NEW_PASSWORD) == 200
        finally:
            assert service.terminate() == 0
    finally:
        database.stop()
