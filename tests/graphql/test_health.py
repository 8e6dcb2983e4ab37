"""Liveness and readiness endpoints."""

from __future__ import annotations

import json


async def test_healthz_and_readyz(client, backend):
    response = await client.raw("GET", "/healthz")
    assert response.code == 200 and json.loads(response.body) == {"status": "ok"}
    response = await client.raw("GET", "/readyz")
    body = json.loads(response.body)
    assert response.code == 200 and body["status"] == "ready"
    expected = {"database", "redis"} if backend == "servers" else {"embedded store"}
    assert set(body["checks"]) == expected
    assert set(body["checks"].values()) == {"ok"}
