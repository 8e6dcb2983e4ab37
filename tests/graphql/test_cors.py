"""CORS on /graphql over HTTP: an allowed origin is echoed exactly, any other gets no
CORS header, every answer varies on Origin, preflights are cheap and bounded, and
error answers carry the headers too (so that the page can read them)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import ME, REGISTER, new_email

APP = "https://app.example.com"
CORS = pytest.mark.settings(cors_origins=f"{APP}, http://127.0.0.1:5173")
PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture
def backend() -> str:
    """CORS lives at the edge: the embedded store is enough."""
    return "embedded"


def cors_headers(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.get_all() if k.lower().startswith("access-control")}


@CORS
async def test_an_allowed_origin_is_echoed_and_may_read_what_it_needs(client):
    response = await client.answer(ME, headers={"Origin": APP})
    assert response.code == 200
    assert cors_headers(response) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Expose-Headers": "Retry-After, X-Request-ID",
    }
    assert response.headers.get_list("Vary") == ["Origin"]


@CORS
@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com.evil.net",  # a suffix
        "https://evilapp.example.com",
        "http://app.example.com",  # another scheme
        "https://app.example.com:8443",  # another port
        "null",  # a sandboxed frame, a file: page, a redirect
        "https://APP.example.com",  # no browser writes it so
    ],
)
async def test_any_other_origin_gets_no_cors_header_but_vary(client, origin):
    response = await client.answer(ME, headers={"Origin": origin})
    assert response.code == 200  # the browser, not the server, keeps it from the page
    assert cors_headers(response) == {}
    assert response.headers.get_list("Vary") == ["Origin"]


@CORS
async def test_a_request_without_origin_varies_on_it_too(client):
    response = await client.answer(ME)
    assert cors_headers(response) == {} and response.headers["Vary"] == "Origin"


async def test_cors_is_off_by_default_outside_development(client):
    response = await client.answer(ME, headers={"Origin": "http://localhost:3000"})
    assert cors_headers(response) == {} and "Vary" not in response.headers


@pytest.mark.settings(cors_origins=APP, cors_max_age_s=120)
async def test_a_preflight_is_answered_204_with_bounded_max_age(client):
    response = await client.raw("OPTIONS", headers=PREFLIGHT)
    assert response.code == 204 and response.body == b""
    assert cors_headers(response) == {
        "Access-Control-Allow-Origin": APP,
        "Access-Control-Allow-Methods": "GET, POST",
        "Access-Control-Allow-Headers": "content-type, authorization, x-request-id",
        "Access-Control-Max-Age": "120",
    }
    assert response.headers["Vary"] == "Origin"
    assert response.headers["Allow"] == "GET, POST, OPTIONS"


@CORS
async def test_a_preflight_from_another_origin_gets_no_cors_header(client):
    response = await client.raw("OPTIONS", headers=PREFLIGHT | {"Origin": "https://evil.example"})
    assert response.code == 204
    assert cors_headers(response) == {} and response.headers["Vary"] == "Origin"


@pytest.mark.settings(cors_origins=APP, rate_limit_register_per_ip="1/300")
async def test_preflights_need_no_body_and_spend_no_limit(client):
    for _ in range(5):
        response = await client.raw(
            "OPTIONS",
            headers=PREFLIGHT | {"Content-Type": "text/plain"},
            body="not json",
            allow_nonstandard_methods=True,  # Tornado's client would send no body
        )
        assert response.code == 204
    status, body = await client.post(REGISTER, {"email": new_email(), "password": "longpassword"})
    assert status == 200 and body["data"]["register"]["status"] == 201


@pytest.mark.settings(cors_origins=APP, max_body_bytes=1024)
async def test_error_answers_carry_the_cors_headers(client):
    origin = {"Origin": APP}
    answers = {
        415: await client.raw(headers=origin | {"Content-Type": "text/plain"}, body="{}"),
        413: await client.raw(headers=origin, body=json.dumps({"query": "#" * 2048})),
        400: await client.raw(headers=origin, body="{not json"),
        405: await client.raw("GET", "/graphql?query=mutation{logout}", headers=origin),
    }
    tornado_405 = await client.raw("PUT", headers=origin, body="{}")  # Tornado's own refusal
    for status, response in [*answers.items(), (405, tornado_405)]:
        assert response.code == status
        assert response.headers["Access-Control-Allow-Origin"] == APP, status
        assert response.headers["Vary"] == "Origin"


@pytest.mark.settings(cors_origins="*")
async def test_any_origin_is_answered_with_a_star_and_no_credentials(client):
    response = await client.answer(ME, headers={"Origin": "https://anyone.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.settings(cors_origins=APP, cors_allow_credentials=True)
async def test_credentials_are_allowed_only_to_a_listed_origin(client):
    response = await client.raw("OPTIONS", headers=PREFLIGHT)
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    response = await client.answer(ME, headers={"Origin": "https://evil.example"})
    assert cors_headers(response) == {}
