"""Property-based fuzzing of the link pages: random methods, queries, headers and form
bodies. Never a 500 or a stack trace, always an HTML page with the pages' headers, and
no token guessed or mangled ever changes a user."""

from __future__ import annotations

import http.client
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import EXAMPLES, assert_no_leak

printable = st.characters(min_codepoint=32, max_codepoint=126)
header_text = st.text(alphabet=printable, max_size=60)
fields = st.dictionaries(
    st.sampled_from(["token", "new_password", "repeat_password", "done", "other"]),
    st.text(max_size=200),
    max_size=4,
)
bodies = st.one_of(st.binary(max_size=300), fields.map(lambda f: urlencode(f).encode()))
queries = st.one_of(
    st.just(""),
    fields.map(lambda f: "?" + urlencode(f)),
    st.text(alphabet=printable, max_size=80).map(lambda text: "?" + text.replace(" ", "+")),
)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.one_of(st.just("application/x-www-form-urlencoded"), header_text),
        "Origin": st.one_of(st.just("null"), header_text),
        "Sec-Fetch-Site": st.sampled_from(["same-origin", "cross-site", "same-site", "none"]),
        "X-Forwarded-For": header_text,
    },
)
paths = st.sampled_from(["/confirm-email", "/reset-password", "/confirm-email-change"])
methods = st.sampled_from(["POST", "POST", "GET", "GET", "HEAD", "PUT", "OPTIONS"])


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(method=methods, path=paths, query=queries, headers=headers, body=bodies)
def test_random_page_requests(fuzz_target, method, path, query, headers, body):
    before = fuzz_target.fingerprint()
    conn = http.client.HTTPConnection("127.0.0.1", fuzz_target.service.port, timeout=30)
    try:
        sent = body if method in ("POST", "PUT") else None
        conn.request(method, path + query, body=sent, headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    assert response.status < 500, raw[:300]
    assert_no_leak(raw.decode("utf-8", errors="replace"))
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "default-src 'none'" in (response.getheader("Content-Security-Policy") or "")
    assert response.getheader("Referrer-Policy") == "no-referrer"
    assert response.getheader("Cache-Control") == "no-store"
    assert fuzz_target.fingerprint() == before
