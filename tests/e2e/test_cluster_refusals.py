"""A Redis Cluster that refuses the work is an outage like any other: slots without a
node (CLUSTERDOWN), a slot moving between nodes (TRYAGAIN) and a cluster with no node
left answer SERVICE_UNAVAILABLE with a retry hint and a metric per cause, never an
internal error.

Made for real on clusters of this module's own (never the shared Redis). What the
service sees is what redis-py's cluster client raises after its own handling: it
retries TRYAGAIN (and follows ASK) until its TTL of 16 tries runs out, then raises
ClusterError("TTL exhausted."); its transactions do not follow ASK or MOVED (no
retries: connect() sets none); after CLUSTERDOWN it refreshes its slot map, which fails
on the uncovered slot with a RedisClusterException; a refresh that reaches no node
raises RedisClusterUnreachableError. The last two are not RedisErrors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import redis
from redis.crc import key_slot

from authsvc.metrics import metrics
from authsvc.stores.base import Session, StoreUnavailable
from authsvc.stores.redis import RedisConfig, RedisSessionStore, open_client
from tests.conftest import settings_for
from tests.helpers import LOGIN, ME, PASSWORD, REFRESH, new_email
from tests.stores.redis_topologies import Cluster

UNAVAILABLE = {"code": "SERVICE_UNAVAILABLE", "retryAfter": 1}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    """One cluster for the module (its start is the slow part); each test leaves its
    slots as it found them."""
    started = Cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield started
    started.stop()


@pytest.fixture
def nodes(cluster) -> Iterator[list[redis.Redis]]:
    clients = [redis.Redis(port=port, decode_responses=True) for port in cluster.ports]
    yield clients
    for node in clients:
        node.close()


@pytest.fixture
def doomed_cluster(tmp_path) -> Iterator[Cluster]:
    """A cluster of the test's own, for a test that stops it for good."""
    started = Cluster(tmp_path / "doomed-cluster")
    yield started
    started.stop()


@pytest.fixture
def settings(request, tmp_path, mysql_server, redis_server):
    """The suite's MariaDB; the module's Redis Cluster, or the test's own if it asks
    for one (doomed_cluster)."""
    own = "doomed_cluster" in request.fixturenames
    cluster = request.getfixturevalue("doomed_cluster" if own else "cluster")
    return settings_for(
        "servers", mysql_server, redis_server, tmp_path, redis_url=cluster.url, redis_cluster=True
    )


def refused_count(cause: str) -> float:
    return metrics().store_errors.labels("redis", cause)._value.get()


def owner_of(slot: int, nodes: list[redis.Redis]) -> redis.Redis:
    for first, last, (_, port, *_) in (r[:3] for r in nodes[0].execute_command("CLUSTER SLOTS")):
        if first <= slot <= last:
            return next(n for n in nodes if n.connection_pool.connection_kwargs["port"] == port)
    raise AssertionError(f"no node serves slot {slot}")


def until_state(nodes: list[redis.Redis], state: str) -> None:
    deadline = time.monotonic() + 10
    while any(node.cluster("info")["cluster_state"] != state for node in nodes):
        assert time.monotonic() < deadline, [node.cluster("info") for node in nodes]
        time.sleep(0.05)


def assert_unavailable(body: dict) -> None:
    assert body["data"] is None, body
    [error] = body["errors"]
    assert error["extensions"] == UNAVAILABLE, body
    assert "Traceback" not in str(body)


def assert_no_error_logged(caplog) -> None:
    # The access line of /readyz's 503 is an ERROR by design; nothing else of ours may be.
    errors = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and r.name.startswith("authsvc")
        and r.name != "authsvc.access"
    ]
    assert not errors, caplog.text
    assert "Traceback" not in caplog.text
    assert caplog.text.count("store unavailable") <= 1, caplog.text  # one per cause


async def logged_in(client) -> tuple[str, str, str]:
    """A new user, logged in: (email, access token, refresh token)."""
    email = new_email()
    assert (await client.register(email))["status"] == 201
    result = await client.login(email)
    assert result["status"] == 200, result
    tokens = json.loads(result["payload"])
    return email, tokens["access_token"], tokens["refresh_token"]


async def test_slots_without_a_node_are_unavailable(client, nodes, caplog):
    """CLUSTERDOWN: with cluster-require-full-coverage (the default), one slot that no
    node serves stops every node from serving any key."""
    email, _, _ = await logged_in(client)
    slot = 0
    owner = owner_of(slot, nodes)
    before = refused_count("cluster_down")
    caplog.clear()
    for node in nodes:  # every node forgets who serves it
        node.cluster("delslots", slot)
    try:
        until_state(nodes, "fail")
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                status, body = await client.post(LOGIN, {"email": email, "password": PASSWORD})
                assert status == 200, body
                assert_unavailable(body)
            ready = await client.raw("GET", "/readyz")
        assert ready.code == 503, ready.body
        assert refused_count("cluster_down") >= before + 3
        assert_no_error_logged(caplog)
    finally:
        owner.cluster("addslots", slot)
        until_state(nodes, "ok")
    assert (await client.login(email))["status"] == 200
    assert (await client.raw("GET", "/readyz")).code == 200


async def test_a_slot_moving_between_nodes_is_unavailable(client, nodes, caplog):
    """TRYAGAIN: while a user's slot migrates, a script over the user's keys of which
    some are not there (yet) runs on neither node. Only that user's calls are refused;
    the service stays ready."""
    email, access, refresh = await logged_in(client)
    assert (await client.post(REFRESH, token=refresh))[1]["data"]["refresh"]
    user_id = jwt.decode(access, options={"verify_signature": False})["sub"]
    slot = key_slot(f"{{{user_id}}}".encode())
    source = owner_of(slot, nodes)
    target = next(node for node in nodes if node is not source)
    before = refused_count("try_again")
    caplog.clear()
    target.cluster("setslot", slot, "importing", source.cluster("myid"))
    source.cluster("setslot", slot, "migrating", target.cluster("myid"))
    try:
        with caplog.at_level(logging.WARNING):
            calls = [
                (LOGIN, {"email": email, "password": PASSWORD}, None),  # create: no session
                (REFRESH, None, refresh),  # use_refresh: no epoch key
                (ME, None, access),  # exists: no epoch key
            ]
            for query, variables, token in calls:
                status, body = await client.post(query, variables, token=token)
                assert status == 200, body
                assert_unavailable(body)
            ready = await client.raw("GET", "/readyz")
        assert ready.code == 200, ready.body  # its key lives in a slot that stays
        assert refused_count("try_again") >= before + len(calls)
        assert_no_error_logged(caplog)
    finally:
        for node in (source, target):
            node.cluster("setslot", slot, "stable")
    assert (await client.post(REFRESH, token=refresh))[1]["data"]["refresh"]
    assert (await client.post(ME, token=access))[1]["data"]["me"]["email"] == email
    assert (await client.login(email))["status"] == 200


async def test_a_transaction_in_a_moving_slot_is_unavailable(io_loop, cluster, nodes):
    """The store's own answer, for the calls no service operation reaches first while a
    slot moves (each one's token check, a script, meets TRYAGAIN before): a MULTI over
    keys of which some are absent gets ASK, which the cluster client's transactions do
    not follow; it then points the slot at the other node, whose MOVED points back."""
    store = RedisSessionStore(
        await open_client(RedisConfig(cluster.url, 3.0, cluster=True)),
        key_prefix="refusals:",
        timeout_s=3.0,
    )
    user_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    session = Session(
        id="s1",
        user_id=user_id,
        refresh_jti_hash="h",
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(hours=1),
        user_agent="",
        ip="",
        epoch=0,
    )
    slot = key_slot(f"{{{user_id}}}".encode())
    source = owner_of(slot, nodes)
    target = next(node for node in nodes if node is not source)
    try:
        assert await store.create(session)
        target.cluster("setslot", slot, "importing", source.cluster("myid"))
        source.cluster("setslot", slot, "migrating", target.cluster("myid"))
        try:
            for call in (
                lambda: store.list_for_user(user_id),  # the epoch key is absent: ASK
                lambda: store.get(user_id, "s1"),  # the slot now points to the target: MOVED
                lambda: store.delete(user_id, "s2"),
            ):
                with pytest.raises(StoreUnavailable) as refused:
                    await call()
                assert (refused.value.store, refused.value.cause) == ("redis", "try_again")
        finally:
            for node in (source, target):
                node.cluster("setslot", slot, "stable")
        # The client's map may still name the target: the first MOVED puts it right,
        # and fails its transaction as above.
        with contextlib.suppress(StoreUnavailable):
            await store.get(user_id, "s1")
        kept = await store.get(user_id, "s1")
        assert kept is not None and kept.refresh_jti_hash == session.refresh_jti_hash
    finally:
        await store.close()


async def test_a_cluster_with_no_node_left_is_unavailable(client, doomed_cluster, caplog):
    """Every node gone: the first calls meet connection errors; once the client's
    paced topology refresh (one a second) has found no node, it raises
    RedisClusterUnreachableError, which is not a RedisError, for every call."""
    email, _, _ = await logged_in(client)
    before = refused_count("connection")
    caplog.clear()
    doomed_cluster.stop()
    answers = 0
    with caplog.at_level(logging.WARNING):
        deadline = time.monotonic() + 10
        while "cannot be connected" not in caplog.text:  # redis-py's line for the refresh
            assert time.monotonic() < deadline, caplog.text
            _, body = await client.post(LOGIN, {"email": email, "password": PASSWORD})
            assert_unavailable(body)
            answers += 1
            await asyncio.sleep(0.1)
        for _ in range(3):  # each now meets the refresh's verdict
            _, body = await client.post(LOGIN, {"email": email, "password": PASSWORD})
            assert_unavailable(body)
        ready = await client.raw("GET", "/readyz")
    assert ready.code == 503, ready.body
    assert refused_count("connection") >= before + answers + 3
    assert_no_error_logged(caplog)
