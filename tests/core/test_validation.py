"""Email and password rules, with the Node service's messages."""

from __future__ import annotations

from authsvc.core.errors import FieldError
from authsvc.core.validation import email_errors, normalize_email, password_errors


def test_email_rules():
    assert email_errors("a@example.com") == []
    assert email_errors("  A@Example.COM ") == []
    assert email_errors("") == [FieldError("email", "email is a required field")]
    for bad in ("no-at", "a@", "@b.c", "a b@c.d", "a@b@c.d"):
        assert email_errors(bad) == [FieldError("email", "email must be a valid email")], bad


def test_emails_are_stored_trimmed_and_lower_cased():
    assert normalize_email("  Alice@Example.COM ") == "alice@example.com"


def test_password_rules():
    assert password_errors("1234567", 7) == []
    assert password_errors("", 7) == [FieldError("password", "password is a required field")]
    assert password_errors("123456", 7) == [
        FieldError("password", "password must be at least 7 characters")
    ]
    assert password_errors("x" * 72, 7) == []
    assert password_errors("x" * 73, 7) == [
        FieldError("password", "password must be at most 72 bytes")
    ]
    assert password_errors("€" * 25, 7) == [  # 25 characters, 75 bytes
        FieldError("password", "password must be at most 72 bytes")
    ]
