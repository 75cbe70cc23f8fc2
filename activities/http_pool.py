"""A connection pool in shards: several of httpcore's pools, each request to the least busy.

httpcore's pool (1.0.x) re-examines every connection it holds on every request and on every
response closed, polling each idle socket as it goes, and counts idle connections in a way
that grows with the square of the connections held. Its cost per request therefore grows with
the pool: at 100 requests in flight through one pool, more than half of an `http` step's CPU
went to that bookkeeping. Shards of at most ``SHARD_CONNECTIONS`` connections keep each pass
short; the pool's rules (limits, keep-alive, expiry) are httpcore's own, per shard.

A request goes to the shard with the fewest requests in flight, the lowest-numbered on a tie:
a quiet worker uses the first shard alone (and reuses its connections, as one pool would),
and the shards fill in turn as the load grows, so the pool as a whole still opens up to
``max_connections`` before a request waits for one.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, AsyncIterator, Callable
from types import TracebackType
from typing import Any

import httpcore

SHARD_CONNECTIONS = 25
"""Connections per shard at most: a pass over 25 connections costs little."""


def shard_limits(
    max_connections: int | None, max_keepalive: int | None
) -> tuple[int, int | None, int | None]:
    """(shards, connections per shard, keep-alive connections per shard); None is no limit,
    as in httpcore (a pool without a limit stays one shard)."""
    if max_connections is None:
        return 1, None, max_keepalive
    shards = max(1, math.ceil(max_connections / SHARD_CONNECTIONS))
    keepalive = None if max_keepalive is None else math.ceil(max_keepalive / shards)
    return shards, math.ceil(max_connections / shards), keepalive


class _CountedStream:
    """A response body that tells its shard when it is closed (its request is done)."""

    def __init__(self, stream: AsyncIterable[bytes], done: Callable[[], None]) -> None:
        self._stream = stream
        self._done: Callable[[], None] | None = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        if self._done is not None:
            self._done()
            self._done = None
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class ShardedConnectionPool:
    """Stands in for ``httpcore.AsyncConnectionPool`` in an httpx transport (what the
    transport calls of it: ``handle_async_request``, ``aclose`` and the context manager)."""

    def __init__(
        self,
        *,
        max_connections: int | None,
        max_keepalive_connections: int | None,
        **pool_options: Any,
    ) -> None:
        shards, per_shard, keepalive = shard_limits(max_connections, max_keepalive_connections)
        self._shards = [
            httpcore.AsyncConnectionPool(
                max_connections=per_shard,
                max_keepalive_connections=keepalive,
                **pool_options,
            )
            for _ in range(shards)
        ]
        self._in_flight = [0] * shards

    @property
    def shards(self) -> list[httpcore.AsyncConnectionPool]:
        return list(self._shards)

    @property
    def in_flight(self) -> int:
        """Requests sent whose response is not yet closed."""
        return sum(self._in_flight)

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        index = self._in_flight.index(min(self._in_flight))
        self._in_flight[index] += 1

        def done() -> None:
            self._in_flight[index] -= 1

        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            done()
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_CountedStream(response.stream, done),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()

    async def __aenter__(self) -> ShardedConnectionPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()
