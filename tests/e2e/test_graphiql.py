"""GraphiQL in development, in a real headless Chromium: every asset comes from authsvc
itself (no request fails, none leaves the machine), and a `me` query with a Bearer
header runs and shows its result."""

from __future__ import annotations

import json
import shutil
import urllib.request
from urllib.parse import urlencode

from playwright.sync_api import Request, Response, sync_playwright

from tests.e2e.processes import ServiceProcess
from tests.e2e.test_serve import migrate, production_env
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def check_response(response: Response, problems: list[str]) -> None:
    if response.status >= 400:
        problems.append(f"{response.status} {response.url}")


def check_request(request: Request, base: str, problems: list[str]) -> None:
    if not request.url.startswith(base):  # a CDN or anything else off this machine
        problems.append(f"left for {request.url}")


def test_graphiql_runs_me_in_chromium(tmp_path):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4"})
    try:
        email = new_email()
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        access = json.loads(body["data"]["login"]["payload"])["access_token"]
        base = f"http://127.0.0.1:{service.port}"
        page_url = f"{base}/graphql?" + urlencode({
            "query": "{ me { email } }",
            "headers": json.dumps({"Authorization": f"Bearer {access}"}),
        })  # fmt: skip
        problems: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("requestfailed", lambda request: problems.append(f"failed {request.url}"))
            page.on("response", lambda response: check_response(response, problems))
            page.on("request", lambda request: check_request(request, base, problems))
            page.on("pageerror", lambda error: problems.append(f"script error {error}"))
            page.goto(page_url)
            page.locator(".graphiql-execute-button").click()
            page.get_by_text(email).first.wait_for(timeout=15000)  # the result, on screen
            page.screenshot(path=str(tmp_path / "graphiql.png"))
            browser.close()
        assert problems == []
    finally:
        assert service.terminate() == 0


def test_graphiql_is_off_in_production_and_for_api_clients(tmp_path, mysql_server, redis_server):
    env = production_env(mysql_server, redis_server)
    migrate(tmp_path, env)
    service = ServiceProcess(tmp_path, env)
    try:
        url = f"http://127.0.0.1:{service.port}/graphql"
        request = urllib.request.Request(url, headers={"Accept": "text/html"})
        try:
            urllib.request.urlopen(request, timeout=10)
            status = 200
        except urllib.error.HTTPError as error:
            status = error.code
            error.close()
        assert status == 400  # an API request with no query, not a page
        assets = urllib.request.Request(f"http://127.0.0.1:{service.port}/graphiql/start.js")
        try:
            urllib.request.urlopen(assets, timeout=10)
            status = 200
        except urllib.error.HTTPError as error:
            status = error.code
            error.close()
        assert status == 404
    finally:
        assert service.terminate() == 0
