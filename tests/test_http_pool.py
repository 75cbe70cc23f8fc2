"""The `http` steps' connection pool in shards: same limits as one pool, each pass short."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from activities.http_pool import SHARD_CONNECTIONS, ShardedConnectionPool, shard_limits
from activities.ssrf import AddressPolicy, GuardedTransport, guarded_client
from tests.fakes import Reply, ScriptedServer

TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    fake = ScriptedServer().start()
    yield fake
    fake.stop()


def pool_of(client: httpx.AsyncClient) -> ShardedConnectionPool:
    transport = client._transport
    assert isinstance(transport, GuardedTransport)
    pool = transport._pool
    assert isinstance(pool, ShardedConnectionPool)
    return pool


def connections(pool: ShardedConnectionPool) -> list[int]:
    return [len(shard.connections) for shard in pool.shards]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=60, max_keepalive_connections=60)
    async with guarded_client(AddressPolicy.from_setting("127.0.0.1"), TIMEOUT, limits) as c:
        yield c


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ((200, 50), (8, 25, 7)),  # the worker's default: 8 shards of 25
        ((60, 60), (3, 20, 20)),
        ((25, 10), (1, 25, 10)),  # small enough: one pool, as before
        ((1, 1), (1, 1, 1)),
        ((26, None), (2, 13, None)),  # no keep-alive limit stays none
        ((None, 20), (1, None, 20)),  # no connection limit: one pool without one
    ],
)
def test_shard_limits_keep_the_pool_s_totals(
    limits: tuple[int | None, int | None], expected: tuple[int, int | None, int | None]
) -> None:
    shards, per_shard, keepalive = shard_limits(*limits)
    assert (shards, per_shard, keepalive) == expected
    if limits[0] is not None and per_shard is not None:
        assert per_shard <= SHARD_CONNECTIONS
        assert shards * per_shard >= limits[0]  # never fewer connections than configured


async def test_a_quiet_client_uses_one_shard_and_reuses_its_connection(
    client: httpx.AsyncClient, server: ScriptedServer
) -> None:
    for n in range(5):
        server.script(f"/quiet/{n}", Reply(body={"n": n}))
        response = await client.get(f"{server.url}/quiet/{n}")
        assert response.status_code == 200
    pool = pool_of(client)
    assert connections(pool) == [1, 0, 0]
    assert pool.in_flight == 0


async def test_concurrent_requests_spread_over_the_shards_within_the_limit(
    client: httpx.AsyncClient, server: ScriptedServer
) -> None:
    # 45 requests held open at once: more than a shard's 20 connections, fewer than the 60.
    for n in range(45):
        server.script(f"/slow/{n}", Reply(body={"n": n}, delay=0.5))
    pool = pool_of(client)
    sent = [asyncio.create_task(client.get(f"{server.url}/slow/{n}")) for n in range(45)]
    await asyncio.sleep(0.3)
    assert pool.in_flight == 45
    held = connections(pool)
    assert sum(held) == 45 and max(held) <= 20, held  # none waited for a connection
    answers = await asyncio.gather(*sent)
    assert [a.json()["n"] for a in answers] == list(range(45))
    assert pool.in_flight == 0


async def test_a_failed_request_gives_its_place_back(client: httpx.AsyncClient) -> None:
    pool = pool_of(client)
    closed = "http://127.0.0.1:9/"  # the discard port: nothing listens on loopback
    for _ in range(3):
        with pytest.raises(httpx.ConnectError):
            await client.get(closed)
    assert pool.in_flight == 0


async def test_an_unread_response_closed_early_gives_its_place_back(
    client: httpx.AsyncClient, server: ScriptedServer
) -> None:
    pool = pool_of(client)
    server.script("/streamed", Reply(body="x" * 100_000))
    async with client.stream("GET", f"{server.url}/streamed") as response:
        assert response.status_code == 200
        assert pool.in_flight == 1
    assert pool.in_flight == 0
