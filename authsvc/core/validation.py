"""Input rules for emails and passwords, with the Node service's (Yup's) messages.

The password rules follow NIST SP 800-63B §5.1.1.2 and OWASP ASVS V2.1: a minimum
length, long passphrases allowed (up to bcrypt's 72 bytes), no composition rules, and
no password from a list of common ones or equal to the account's email.
"""

from __future__ import annotations

import bisect
import gzip
import itertools
import unicodedata
from array import array
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from email_validator import EmailNotValidError, validate_email

from authsvc.core.errors import FieldError

#: bcrypt reads at most 72 bytes; bcrypt 5 raises on more, so longer is refused up front.
BCRYPT_MAX_PASSWORD_BYTES = 72


#: The longest input looked at: four times the longest address (254), room for input in
#: decomposed (NFD) form; anything longer is refused before any parsing.
MAX_EMAIL_INPUT_CHARS = 1024
#: The longest stored address (RFC 5321 path limit, the width of the column).
MAX_EMAIL_CHARS = 254


def normalize_email(email: str) -> str:
    """The one stored and compared form of an email: what email-validator makes of it
    (local part in NFC, the domain in Unicode form, so ``bücher.de`` and
    ``xn--bcher-kva.de`` are one), lower-cased (unique case-insensitively, as the
    Node service stored it) and NFC again (lower-casing can leave NFC).

    Input that is no valid email (only login and lookups see it) keeps the old rule,
    trimmed and lower-cased, so that rows stored before this rule still match.
    """
    canonical = _canonical(email)
    return canonical if canonical is not None else email.strip().lower()


def email_errors(email: str, path: str = "email") -> list[FieldError]:
    if not email.strip():
        return [FieldError(path, f"{path} is a required field")]
    if _canonical(email) is None:
        return [FieldError(path, f"{path} must be a valid email")]
    return []


def _canonical(email: str) -> str | None:
    """The normalized form of a valid email, None for anything else (linear in the
    input, bounded by MAX_EMAIL_INPUT_CHARS)."""
    if len(email) > MAX_EMAIL_INPUT_CHARS:
        return None
    try:
        parsed = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    form = unicodedata.normalize("NFC", parsed.normalized.lower())
    return form if len(form) <= MAX_EMAIL_CHARS else None  # lower() may lengthen it


class SortedLines:
    """A sorted list of lines kept as one bytes object, searched by bisection: 200 KB
    for the common passwords, where a frozenset of 19,640 strings took 1.7 MB in every
    worker."""

    def __init__(self, lines: list[bytes]) -> None:
        lines = sorted(set(lines))
        self._blob = b"".join(lines)
        self._starts = array("I", itertools.accumulate((len(line) for line in lines), initial=0))

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, bytes):
            return False
        index = bisect.bisect_left(range(len(self)), item, key=self._line)
        return index < len(self) and self._line(index) == item

    def _line(self, index: int) -> bytes:
        return self._blob[self._starts[index] : self._starts[index + 1]]


@cache
def common_passwords() -> SortedLines:
    """The 19,640 most common passwords, lower-cased UTF-8 (shipped with the package,
    see its NOTICE)."""
    data = (files("authsvc.core") / "data" / "common-passwords.txt.gz").read_bytes()
    return SortedLines(gzip.decompress(data).lower().splitlines())


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int
    reject_common: bool = True

    def errors(self, password: str, email: str = "", path: str = "password") -> list[FieldError]:
        """Every rule ``password`` breaks, as field errors on ``path``."""
        if not password:
            return [FieldError(path, f"{path} is a required field")]
        if len(password) < self.min_length:
            return [FieldError(path, f"{path} must be at least {self.min_length} characters")]
        if len(password.encode()) > BCRYPT_MAX_PASSWORD_BYTES:
            return [FieldError(path, f"{path} must be at most {BCRYPT_MAX_PASSWORD_BYTES} bytes")]
        if email and normalize_email(password) == normalize_email(email):
            return [FieldError(path, f"{path} must not be the email address")]
        if self.reject_common and password.lower().encode() in common_passwords():
            return [FieldError(path, f"{path} is too common")]
        return []
