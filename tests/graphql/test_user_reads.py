"""`me` reads its user from the database rarely: once for concurrent requests of one user,
then from a cache that lasts at most USER_CACHE_S."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import ME


def selects(mysql_server) -> int:
    """The SELECTs MariaDB has run in all (SHOW STATUS is not one)."""
    with mysql_server.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Com_select'")
        return int(cursor.fetchone()[1])


@pytest.mark.parametrize("backend", ["servers"])
async def test_concurrent_requests_of_one_user_share_one_read(client, mysql_server):
    access, _ = await client.tokens()
    before = selects(mysql_server)
    answers = await asyncio.gather(*(client.post(ME, token=access) for _ in range(30)))
    assert all(status == 200 and body["data"]["me"]["id"] for status, body in answers)
    assert selects(mysql_server) - before == 1
