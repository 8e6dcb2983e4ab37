"""Mail templates: ``<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html`` in the
package's ``templates/`` folder, each overridable by a file of the same name in
EMAIL_TEMPLATES_DIR; rendered with tornado.template.

Only the HTML part is escaped: a link in the text part must reach the reader as it is
(``&`` escaped to ``&amp;`` breaks a query string; other services' users hit exactly
that). All are read and compiled once, at start, so a broken override fails the start.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import tornado.template

#: The kinds the account flows send, and what each is for.
KINDS = {
    "confirm_email": "confirm the address of a new account",
    "reset_password": "a link to choose a new password",
    "password_changed": "the password was changed (to the account's address)",
    "email_change_confirm": "confirm a new address (to the new address)",
    "email_change_notice": "a change of address was asked for or done (to the old address)",
}
PARTS = ("subject.txt", "txt", "html")
#: Every variable a template may use, with the value it has when the caller gives none.
DEFAULTS: dict[str, Any] = {
    "link": "",
    "email": "",
    "new_email": "",
    "expires_in": "",
    "service_name": "",
    "completed": False,
}


class TemplateError(Exception):
    """A template that cannot be read or compiled, or a kind that has none."""


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


class MailTemplates:
    def __init__(self, override_dir: str | None = None) -> None:
        """Read and compile every template. Raises TemplateError naming the file."""
        self._compiled: dict[tuple[str, str], tornado.template.Template] = {}
        packaged = files("authsvc.mail") / "templates"
        folder = Path(override_dir) if override_dir else None
        for kind in KINDS:
            for part in PARTS:
                name = f"{kind}.{part}"
                override = folder / name if folder else None
                try:
                    if override is not None and override.is_file():
                        source, origin = override.read_text(encoding="utf-8"), str(override)
                    else:
                        source, origin = (packaged / name).read_text(encoding="utf-8"), name
                    self._compiled[(kind, part)] = tornado.template.Template(
                        source,
                        name=origin,
                        # Text parts verbatim; HTML escaped (tornado's default escape).
                        autoescape="xhtml_escape" if part == "html" else None,
                        whitespace="all",
                    )
                except (OSError, UnicodeDecodeError, tornado.template.ParseError) as exc:
                    raise TemplateError(f"mail template {origin}: {exc}") from exc

    def render(self, kind: str, **variables: Any) -> RenderedMail:
        """The three parts of ``kind``. Raises TemplateError for an unknown kind or a
        template that fails to render (a variable it names that is not known)."""
        if kind not in KINDS:
            raise TemplateError(f"no mail templates of kind {kind!r}")
        values = DEFAULTS | variables
        try:
            subject, text, html = (
                self._compiled[(kind, part)].generate(**values).decode() for part in PARTS
            )
        except Exception as exc:  # a template's own error: NameError, TypeError, …
            raise TemplateError(f"mail template {kind}: {exc}") from exc
        # A subject is one line: header folding is the email package's job, not ours.
        return RenderedMail(" ".join(subject.split()), text, html)


def human_duration(seconds: int) -> str:
    """``expires_in`` as a reader says it: "24 hours", "1 hour", "90 minutes", "2 days".
    Whole hours or days only when they are exact: a link must not be said to last
    longer than it does."""
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        count, unit = seconds // 86400, "day"
    elif seconds >= 3600 and seconds % 3600 == 0:
        count, unit = seconds // 3600, "hour"
    elif seconds >= 60:
        count, unit = round(seconds / 60), "minute"
    else:
        count, unit = max(1, seconds), "second"
    return f"{count} {unit}{'s' if count != 1 else ''}"
