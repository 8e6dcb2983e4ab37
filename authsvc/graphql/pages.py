"""The pages behind the mails' links (/confirm-email, /reset-password,
/confirm-email-change), served by authsvc itself when EMAIL_LINK_BASE_URL is unset.

A GET only shows the page: mail scanners and link previews open links, so the token
is neither spent nor looked up until a person presses the button, which POSTs the
token (in a hidden field, never in the URL) to the same path. A spent token is
answered 303 See Other to a result page without it, so a reload or the history never
posts it again or shows it. The pages work without JavaScript and load nothing: one
HTML document with its stylesheet inline, allowed by its hash in a strict CSP.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import tornado.template
import tornado.web

from authsvc.core.errors import InvalidInput
from authsvc.core.lifecycle import MAX_TOKEN_CHARS
from authsvc.core.ratelimits import RateLimited
from authsvc.core.sessions import ClientInfo
from authsvc.graphql.client_address import ClientAddressResolver
from authsvc.graphql.errors import UNAVAILABLE_RETRY_S, note_store_unavailable
from authsvc.graphql.paced_handler import PacedHandler
from authsvc.graphql.pacing import Pacing
from authsvc.services import Services
from authsvc.stores.base import StoreUnavailable

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: What a form of these pages sends (HTML §4.10.21.8). Anything else is refused (415)
#: before it is read: a cross-site page cannot make a browser send JSON here without
#: a CORS preflight, so no JSON trick reaches the flows either.
FORM_TYPE = "application/x-www-form-urlencoded"
#: A form has at most these fields (token, two passwords); more is no form of ours.
MAX_FIELDS = 8

INVALID_LINK = "This link is invalid or has expired."
INVALID_LINK_HINT = "A link works once, for a limited time. Ask for a new mail and open its link."


@dataclass(frozen=True, slots=True)
class Flow:
    """One page: its texts, and how its POST spends the token."""

    #: The mutation this page stands for: names it in the access log and the metrics.
    operation: str
    #: The last segment of the page's path, as a relative URL (the form's action).
    action: str
    title: str
    intro: str
    button: str
    done_title: str
    done_text: str
    asks_password: bool
    #: Spends the token. Raises InvalidInput (Busy, RateLimited), StoreUnavailable.
    spend: Callable[[Services, str, str, ClientInfo], Awaitable[object]]


async def _confirm_email(services: Services, token: str, _: str, client: ClientInfo) -> object:
    return await services.lifecycle.confirm_email(token)


async def _reset_password(
    services: Services, token: str, password: str, client: ClientInfo
) -> object:
    # The same address the resetPassword mutation passes: its limits are the same ones.
    await services.lifecycle.reset_password(token, password, client.limited_as)
    return None


async def _confirm_email_change(
    services: Services, token: str, _: str, client: ClientInfo
) -> object:
    return await services.lifecycle.confirm_email_change(token)


#: The pages by path (core/lifecycle.py LINK_PATHS makes the links to them).
FLOWS: dict[str, Flow] = {
    "/confirm-email": Flow(
        operation="confirmEmail",
        action="confirm-email",
        title="Confirm your email address",
        intro="Press the button to confirm the email address of your account.",
        button="Confirm my email address",
        done_title="Email address confirmed",
        done_text="Your email address is confirmed. You can log in now.",
        asks_password=False,
        spend=_confirm_email,
    ),
    "/reset-password": Flow(
        operation="resetPassword",
        action="reset-password",
        title="Choose a new password",
        intro="Enter the new password of your account twice.",
        button="Set the new password",
        done_title="Password changed",
        done_text=(
            "Your password was changed and every session of your account was signed "
            "out. Log in with the new password."
        ),
        asks_password=True,
        spend=_reset_password,
    ),
    "/confirm-email-change": Flow(
        operation="confirmEmailChange",
        action="confirm-email-change",
        title="Confirm your new email address",
        intro="Press the button to make this address the email address of your account.",
        button="Confirm the new address",
        done_title="Email address changed",
        done_text="Your account now uses this email address. Log in with it from now on.",
        asks_password=False,
        spend=_confirm_email_change,
    ),
}


class PageTemplates:
    """The pages' templates (autoescaped) and their one stylesheet, with the CSP that
    allows that stylesheet and nothing else."""

    def __init__(self, root: Path = TEMPLATES) -> None:
        self.loader = tornado.template.Loader(str(root), autoescape="xhtml_escape")
        self.css = (root / "page.css").read_text()
        digest = base64.b64encode(hashlib.sha256(self.css.encode()).digest()).decode()
        self.csp = (
            f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )

    def render(self, name: str, **values: Any) -> bytes:
        return self.loader.load(name).generate(css=self.css, **values)


@tornado.web.stream_request_body
class LinkPageHandler(PacedHandler):
    """GET (and HEAD) show a page; POST spends its token. The body is streamed so that
    an oversized one is refused (413) before it is buffered, as on /graphql."""

    def initialize(
        self,
        flow: Flow,
        services: Services,
        templates: PageTemplates,
        addresses: ClientAddressResolver,
        pacing: Pacing,
        max_body_bytes: int,
        public_host: str | None = None,
    ) -> None:
        """``public_host``: PUBLIC_URL's host[:port], an Origin as good as the request's
        own Host (a proxy in front may pass another Host on)."""
        self.flow = flow
        self.services = services
        self.templates = templates
        self.addresses = addresses
        self.pacing = pacing
        self.start_body(max_body_bytes)
        self.public_host = public_host
        self.answering = False  # until the whole body is in

    def prepare(self) -> None:
        super().prepare()
        self._protect()
        if self.request.method != "POST":
            return
        if not _is_form(self.request.headers):
            self._message(415, "This page accepts its own form only.", error=True)
            return
        hosts = {self.request.host, self.public_host or self.request.host}
        if not _same_origin(self.request.headers, hosts):
            self._message(403, "This form was sent from another site.", error=True)
            return
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            self._message(413, "The form sent is too large.", error=True)

    def _protect(self) -> None:
        """The headers of every answer of these pages, error pages too. The token is in
        the URL: no Referer may carry it off, no cache may keep it."""
        self.set_header("Content-Security-Policy", self.templates.csp)
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")  # frame-ancestors, for old browsers

    def compute_etag(self) -> None:
        return None  # nothing here is cached, so nothing is revalidated

    def get(self) -> None:
        self.answering = True
        flow = self.flow
        if self.get_query_argument("done", None) is not None:
            self._message(200, flow.done_text, title=flow.done_title)
            return
        token = self.get_query_argument("token", "")
        # Refused before anything else: no token of ours is this long.
        if len(token) > MAX_TOKEN_CHARS:
            self._message(400, INVALID_LINK, hint=INVALID_LINK_HINT, error=True)
            return
        if not token:
            self._message(
                400, "This link is incomplete.", error=True,
                hint="Open the link of the mail again, or copy all of it into the address bar.",
            )  # fmt: skip
            return
        self._form(200, token)

    def head(self) -> None:
        # Tornado sends a HEAD's headers and no body: the same page, nothing spent.
        self.get()

    async def post(self) -> None:
        self.answering = True
        if self.body_too_large:
            self._message(413, "The form sent is too large.", error=True)
            return
        fields = self._fields()
        if fields is None:
            self._message(400, "The form sent is not one of this page's.", error=True)
            return
        token = fields.get("token", "")
        if not token or len(token) > MAX_TOKEN_CHARS:
            self._message(400, INVALID_LINK, hint=INVALID_LINK_HINT, error=True)
            return
        password = fields.get("new_password", "")
        if self.flow.asks_password and password != fields.get("repeat_password", ""):
            self.outcome = "invalid_input"
            self._form(400, token, error="The two passwords differ: enter the same one twice.")
            return
        await self._spend(token, password)

    async def _spend(self, token: str, password: str) -> None:
        flow = self.flow
        self.operation = flow.operation
        # Admission to hashing judges this client as it judges its GraphQL requests.
        self.admit_client()
        address = self.client_ip
        client = ClientInfo(
            ip=address,
            user_agent=self.request.headers.get("User-Agent", ""),
            limit_subject=self.addresses.limit_subject(address),
        )
        try:
            await flow.spend(self.services, token, password, client)
        except InvalidInput as exc:
            await self.pace(exc.retry_after_s)
            self._refused(exc, token)
            return
        except StoreUnavailable as exc:
            note_store_unavailable(exc, self.request_id)
            self.outcome = "unavailable"
            self.set_header("Retry-After", str(UNAVAILABLE_RETRY_S))
            # Not "nothing was changed": a store can fail after the change committed
            # (a reset's session revocation, say), and the page cannot tell.
            self._message(
                503, "The service is unavailable for a moment.",
                hint="Go back and send the form again in a few seconds. If the link is "
                "then refused as invalid, your change was made.", error=True,
            )  # fmt: skip
            return
        await self.pace(None)
        self.outcome = "ok"
        # 303: the browser GETs the result page; the token is in neither its URL nor
        # the history, and a reload shows the result without posting again.
        self.redirect(f"{flow.action}?done=1", status=303)

    def _refused(self, exc: InvalidInput, token: str) -> None:
        if exc.retry_after_s is not None:
            self.set_header("Retry-After", str(exc.retry_after_s))
        paths = {error.path for error in exc.errors}
        if isinstance(exc, RateLimited):
            self.outcome = "rate_limited"
            self._message(429, f"Too many attempts: {exc.message}.", error=True)
        elif exc.status == 503:  # Busy
            self.outcome = "busy"
            self._message(
                503, "The service is busy: nothing was changed.",
                hint="Go back and send the form again in a few seconds.", error=True,
            )  # fmt: skip
        elif "token" in paths:
            self.outcome = "invalid_token"
            self._message(400, INVALID_LINK, hint=INVALID_LINK_HINT, error=True)
        elif "newPassword" in paths:  # the password rules: the same form again
            self.outcome = "invalid_input"
            self._form(400, token, error=_password_refusal(exc))
        elif "newEmail" in paths:
            self.outcome = "invalid_input"
            self._message(
                409, "Another account has taken this address meanwhile: nothing was changed.",
                error=True,
            )  # fmt: skip
        else:
            self.outcome = "invalid_input"
            self._message(400, exc.message, error=True)

    def _fields(self) -> dict[str, str] | None:
        """The form's fields (the last of each name), or None for a body that is no
        urlencoded UTF-8 form of ours."""
        try:
            parsed = parse_qs(
                self.body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS
            )
        except ValueError:  # invalid UTF-8 (UnicodeDecodeError), too many fields
            return None
        return {name: values[-1] for name, values in parsed.items()}

    def _form(self, status: int, token: str, error: str | None = None) -> None:
        self._page(
            status, "form.html", title=self.flow.title, flow=self.flow, token=token,
            action=self.flow.action, error=error,
        )  # fmt: skip

    def _message(
        self,
        status: int,
        text: str,
        *,
        title: str | None = None,
        hint: str | None = None,
        error: bool = False,
    ) -> None:
        heading = title or ("Something went wrong" if error else self.flow.title)
        self._page(status, "message.html", title=heading, text=text, hint=hint, error=error)

    def _page(self, status: int, template: str, **values: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.templates.render(template, **values))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """What Tornado answers itself (a malformed query, an unexpected error): the
        same page, a generic text, never a traceback."""
        self.outcome = f"http_{status_code}"
        self._protect()  # send_error cleared the headers
        self.set_header("X-Request-ID", self.request_id)
        if status_code == 405:
            self.set_header("Allow", "GET, HEAD, POST")
        text = (
            "Something went wrong on our side: nothing was changed."
            if status_code >= 500
            else "This request could not be understood."
        )
        self._message(status_code, text, error=True)


def _password_refusal(exc: InvalidInput) -> str:
    """The password rules' messages ("newPassword must be at least 8 characters") as a
    sentence for a person: "The new password must be at least 8 characters." """
    rules = [e.message for e in exc.errors if e.path == "newPassword"]
    said = [m.removeprefix("newPassword ") for m in rules if m.startswith("newPassword ")]
    if len(said) == len(rules):
        return "The new password " + "; it ".join(said) + "."
    return "The new password is refused: " + "; ".join(rules) + "."


def _is_form(headers: Mapping[str, str]) -> bool:
    media_type, _, _ = headers.get("Content-Type", "").partition(";")
    return media_type.strip().lower() == FORM_TYPE


def _same_origin(headers: Mapping[str, str], hosts: set[str]) -> bool:
    """Whether a form POST may come from this site. The token is what authorizes the
    change, so a foreign form could do no more than its visitor's own mail link; the
    check only refuses what plainly came from elsewhere:

    - ``Origin`` naming another host than ``hosts`` (the request's own, PUBLIC_URL's;
      the scheme is not compared: behind a TLS proxy the request arrives as http).
      Absent, or ``null``: allowed, as browsers send ``null`` for a form POST from a
      page whose Referrer-Policy is no-referrer, as these pages' is.
    - ``Sec-Fetch-Site`` (sent by current browsers even when Origin is null) saying
      ``cross-site`` or ``same-site``.
    """
    site = headers.get("Sec-Fetch-Site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return False
    origin = headers.get("Origin", "").strip()
    if not origin or origin == "null":
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https"):
        return False
    return _plain_host(parts.netloc) in {_plain_host(host) for host in hosts}


def _plain_host(host: str) -> str:
    """host[:port] lower-cased, without a default port (Origin leaves it out)."""
    host = host.strip().lower()
    for default in (":80", ":443"):
        if host.endswith(default):
            return host[: -len(default)]
    return host
