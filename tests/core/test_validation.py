"""Email and password rules, with the Node service's messages."""

from __future__ import annotations

import time
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from authsvc.core.errors import FieldError
from authsvc.core.validation import (
    PasswordPolicy,
    SortedLines,
    common_passwords,
    email_errors,
    normalize_email,
)


def test_email_rules():
    assert email_errors("a@example.com") == []
    assert email_errors("  A@Example.COM ") == []
    assert email_errors("") == [FieldError("email", "email is a required field")]
    for bad in ("no-at", "a@", "@b.c", "a b@c.d", "a@b@c.d"):
        assert email_errors(bad) == [FieldError("email", "email must be a valid email")], bad


def test_emails_are_stored_trimmed_and_lower_cased():
    assert normalize_email("  Alice@Example.COM ") == "alice@example.com"


def test_one_form_for_emails_that_look_the_same():
    nfc = "jos\u00e9@example.com"
    assert normalize_email(unicodedata.normalize("NFD", nfc)) == nfc
    assert normalize_email("JOS\u00c9@Example.com") == nfc
    # The domain in its Unicode form, however it was written.
    for spelling in ("hans@xn--bcher-kva.de", "Hans@B\u00dcCHER.de", "hans@XN--BCHER-KVA.DE"):
        assert normalize_email(spelling) == "hans@b\u00fccher.de", spelling
    for email in (nfc, "hans@b\u00fccher.de", "\u0130@example.com", "a@example.com"):
        once = normalize_email(email)
        assert normalize_email(once) == once  # a stored form maps to itself
        assert once == unicodedata.normalize("NFC", once) == once.lower()
    # Not an email (only login sees such input): the old rule, so old rows still match.
    assert normalize_email(" X@LocalHost ") == "x@localhost"


@settings(max_examples=300, deadline=None)
@given(
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["example.com", "b\u00fccher.de", "xn--bcher-kva.de", "\u00c9COLE.fr"]),
)
def test_the_stored_form_is_a_fixed_point_and_spellings_share_it(local, domain):
    # A stored email normalizes to itself (the migration leaves it, lookups find it),
    # and the same address in NFD, or with its ASCII letters upper-cased, has its form.
    email = f"{local}@{domain}"
    once = normalize_email(email)
    assert normalize_email(once) == once
    if not email_errors(email):
        ascii_upper = email.translate({c: c - 32 for c in range(ord("a"), ord("z") + 1)})
        for spelling in (ascii_upper, unicodedata.normalize("NFD", email)):
            assert normalize_email(spelling) == once, spelling


def test_oversized_emails_are_refused_before_parsing():
    invalid = [FieldError("email", "email must be a valid email")]
    huge = "\u00e9" * 2_000_000 + "@example.com"  # 1.7 s in email-validator here
    started = time.perf_counter()
    assert email_errors(huge) == invalid
    assert normalize_email(huge) == huge.lower()
    assert time.perf_counter() - started < 0.5
    assert email_errors("a" * 64 + "@" + "b" * 60 + ".com") == []


def test_password_rules():
    policy = PasswordPolicy(min_length=7, reject_common=False)
    assert policy.errors("1234567") == []
    assert policy.errors("") == [FieldError("password", "password is a required field")]
    assert policy.errors("123456") == [
        FieldError("password", "password must be at least 7 characters")
    ]
    assert policy.errors("x" * 72) == []
    assert policy.errors("x" * 73) == [FieldError("password", "password must be at most 72 bytes")]
    assert policy.errors("€" * 25) == [  # 25 characters, 75 bytes
        FieldError("password", "password must be at most 72 bytes")
    ]


def test_long_passphrases_and_any_characters_are_allowed():
    policy = PasswordPolicy(min_length=8)
    assert policy.errors("a" * 64 + "b" * 8) == []
    assert policy.errors("correct horse battery staple") == []
    assert policy.errors("ünïcödé pässwörd 🔑") == []
    assert policy.errors("gravel-lantern") == []  # no composition rules


def test_common_passwords_and_the_email_are_refused():
    policy = PasswordPolicy(min_length=8)
    assert len(common_passwords()) >= 10_000
    for common in ("password", "Password1", "qwertyuiop", "iloveyou"):
        assert policy.errors(common) == [FieldError("password", "password is too common")]
    for password, email in (
        ("Ada@Example.com", "ada@example.com"),
        ("ad\u00e9@xn--bcher-kva.de", "ade\u0301@b\u00fccher.de"),  # another spelling
    ):
        assert policy.errors(password, email=email) == [
            FieldError("password", "password must not be the email address")
        ]
    assert policy.errors("password", path="newPassword") == [
        FieldError("newPassword", "newPassword is too common")
    ]


def test_the_compact_list_finds_exactly_its_lines():
    lines = [b"b", b"abc", b"ab", b"", b"zz", b"abc"]
    found = SortedLines(lines)
    assert len(found) == 5  # sorted, duplicates once
    assert all(line in found for line in lines)
    for other in (b"a", b"abcd", b"aa", b"c", b"zzz", b"\xff", "ab"):
        assert other not in found
    every = common_passwords()
    assert b"qwerty" in every and b"qwerty-but-not-common-2026" not in every
