"""CORS in a real headless Chromium (Debian's, as the GraphiQL test runs it): a page on
one loopback origin calls `authsvc serve` on another with fetch(), a JSON body and a
Bearer token (so the browser sends a preflight first). The allowed origin gets its
answer, error answers included; a page on an origin not listed is refused by the
browser itself, which never sends it the POST."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import sync_playwright

from tests.e2e.processes import ServiceProcess, free_port
from tests.e2e.test_graphiql import CHROMIUM_ARGS
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email

PAGE = b"<!doctype html><meta charset=utf-8><title>another origin</title><p>app</p>"

#: What the page runs: fetch() as a single-page app would, and what it could read.
CALL = """async ([url, token, body]) => {
  try {
    const answer = await fetch(url, {
      method: "POST",
      headers: {"content-type": "application/json", "authorization": `Bearer ${token}`},
      body,
    });
    return {status: answer.status, requestId: answer.headers.get("x-request-id"),
            body: await answer.json()};
  } catch (error) {
    return {rejected: `${error.name}: ${error.message}`};
  }
}"""


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def page_server(port: int) -> Iterator[str]:
    """The page at http://127.0.0.1:PORT/ (its own origin), in a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


def posts(service: ServiceProcess) -> int:
    return service.logs().count("method=POST path=/graphql")


def test_chromium_lets_a_listed_origin_read_and_blocks_another(tmp_path):
    allowed_port, other_port = free_port(), free_port()
    env = {"BCRYPT_ROUNDS": "4", "CORS_ORIGINS": f"http://127.0.0.1:{allowed_port}"}
    service = ServiceProcess(tmp_path, env)
    try:
        email = new_email()
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        access = json.loads(body["data"]["login"]["payload"])["access_token"]
        me = json.dumps({"query": "{ me { email } }"})
        chromium = shutil.which("chromium") or "/usr/bin/chromium"
        with (
            page_server(allowed_port) as allowed,
            page_server(other_port) as other,
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(allowed + "/")
                answer = page.evaluate(CALL, [service.url, access, me])
                assert answer["status"] == 200, answer
                assert answer["body"] == {"data": {"me": {"email": email}}}
                assert answer["requestId"]  # exposed to the page
                refused = page.evaluate(CALL, [service.url, access, "{not json"])
                assert refused["status"] == 400  # an error the page can read
                assert refused["body"]["errors"][0]["message"] == "Request body is not valid JSON"

                before = posts(service)
                page.goto(other + "/")
                blocked = page.evaluate(CALL, [service.url, access, me])
                assert blocked == {"rejected": "TypeError: Failed to fetch"}
            finally:
                browser.close()
        assert posts(service) == before  # the preflight failed: no POST was sent
        assert "method=OPTIONS path=/graphql status=204" in service.logs()
    finally:
        assert service.terminate() == 0
