"""The link pages in a real headless Chromium (Debian's, as the GraphiQL test runs it):
a person opens the mail's link, presses the button or fills the form, and lands on a
result page whose URL holds no token; nothing is loaded from anywhere, no script runs,
and the CSP blocks nothing the page needs (its stylesheet applies)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from tests.e2e.processes import ServiceProcess
from tests.e2e.test_graphiql import CHROMIUM_ARGS, check_request, check_response
from tests.e2e.test_pages import NEW_PASSWORD, REQUEST_PASSWORD_RESET, login_status
from tests.helpers import LOGIN, PASSWORD, REGISTER, new_email


def in_chromium(base: str, tmp_path: Path, name: str, steps: Callable[[Page], None]) -> None:
    """Run ``steps`` on a fresh page; every failed or outside request, script error and
    console error (a CSP violation is one) fails the test."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    problems: list[str] = []

    def check_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console {message.text}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(java_script_enabled=False)  # the pages need none
            page.on("requestfailed", lambda request: problems.append(f"failed {request.url}"))
            page.on("response", lambda response: check_response(response, problems))
            page.on("request", lambda request: check_request(request, base, problems))
            page.on("console", check_console)
            steps(page)
            page.screenshot(path=str(tmp_path / f"{name}.png"))
        finally:
            browser.close()
    assert problems == []


def assert_styled(page: Page) -> None:
    """The inline stylesheet applied: the CSP's hash matches it."""
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(244, 245, 247)"


def test_a_person_confirms_their_email_in_chromium(tmp_path, smtp_sink):
    env = {"BCRYPT_ROUNDS": "4", "SMTP_URL": smtp_sink.url, "EMAIL_CONFIRMATION": "true"}
    service = ServiceProcess(tmp_path, env)
    try:
        email = new_email()
        _, body = service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        assert body["data"]["register"]["status"] == 201
        assert login_status(service, email, PASSWORD) == 401
        link = smtp_sink.link(smtp_sink.wait_for(email))
        base = f"http://127.0.0.1:{service.port}"
        assert link.startswith(f"{base}/confirm-email?token=")

        def confirm(page: Page) -> None:
            page.goto(link)
            button = page.get_by_role("button", name="Confirm my email address")
            button.click()
            page.wait_for_url(f"{base}/confirm-email?done=1")
            page.get_by_text("Your email address is confirmed").wait_for()
            assert_styled(page)

        in_chromium(base, tmp_path, "confirm-email", confirm)
        assert login_status(service, email, PASSWORD) == 200
    finally:
        assert service.terminate() == 0


def test_a_person_resets_their_password_in_chromium(tmp_path, smtp_sink):
    service = ServiceProcess(tmp_path, {"BCRYPT_ROUNDS": "4", "SMTP_URL": smtp_sink.url})
    try:
        email = new_email()
        service.graphql(REGISTER, {"email": email, "password": PASSWORD})
        _, body = service.graphql(LOGIN, {"email": email, "password": PASSWORD})
        assert json.loads(body["data"]["login"]["payload"])["refresh_token"]
        _, body = service.graphql(REQUEST_PASSWORD_RESET, {"email": email})
        assert body["data"]["requestPasswordReset"]["status"] == 200
        link = smtp_sink.link(smtp_sink.wait_for(email))
        base = f"http://127.0.0.1:{service.port}"

        def reset(page: Page) -> None:
            page.goto(link)
            assert_styled(page)
            page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
            page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
            page.get_by_role("button", name="Set the new password").click()
            page.wait_for_url(f"{base}/reset-password?done=1")
            page.get_by_text("Your password was changed").wait_for()

        in_chromium(base, tmp_path, "reset-password", reset)
        assert login_status(service, email, NEW_PASSWORD) == 200
        assert login_status(service, email, PASSWORD) == 401
    finally:
        assert service.terminate() == 0
