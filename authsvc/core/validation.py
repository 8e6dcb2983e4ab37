"""Input rules for emails and passwords, with the Node service's (Yup's) messages."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from authsvc.core.errors import FieldError

#: bcrypt reads at most 72 bytes; bcrypt 5 raises on more, so longer is refused up front.
BCRYPT_MAX_PASSWORD_BYTES = 72


def normalize_email(email: str) -> str:
    """The stored form of an email: trimmed and lower-cased (unique case-insensitively)."""
    return email.strip().lower()


def email_errors(email: str) -> list[FieldError]:
    if not email.strip():
        return [FieldError("email", "email is a required field")]
    try:
        validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError:
        return [FieldError("email", "email must be a valid email")]
    return []


def password_errors(password: str, min_length: int) -> list[FieldError]:
    if not password:
        return [FieldError("password", "password is a required field")]
    if len(password) < min_length:
        return [FieldError("password", f"password must be at least {min_length} characters")]
    if len(password.encode()) > BCRYPT_MAX_PASSWORD_BYTES:
        return [
            FieldError("password", f"password must be at most {BCRYPT_MAX_PASSWORD_BYTES} bytes")
        ]
    return []
