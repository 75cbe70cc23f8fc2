"""Request rate limits: one token bucket per authenticated caller, and a separate, bounded
throttle on failed authentication per client address.

The two never share a table. An eviction in a table that anyone can grow would let anyone reset
a real key's limit (the probe's 10,050 unsigned webhooks did exactly that), so buckets of
authenticated callers are never evicted, and the only table unauthenticated traffic can fill is
one whose overflow lands on unauthenticated callers alone.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from typing import Any

from starlette.requests import Request

from api.server.asgi import HttpMiddleware, send_error
from api.server.errors import ApiError


class _Buckets:
    """Token buckets by name: ``rate_per_minute`` sustained, ``burst`` at once."""

    def __init__(self, rate_per_minute: float, burst: int) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst)
        self.table: dict[str, tuple[float, float]] = {}

    def tokens(self, name: str, now: float) -> float:
        tokens, last = self.table.get(name, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def take(self, name: str, now: float) -> float:
        """Take one token; 0 if there was one, else the seconds until there is."""
        tokens = self.tokens(name, now)
        if tokens >= 1:
            self.table[name] = (tokens - 1, now)
            return 0.0
        self.table[name] = (tokens, now)
        return (1 - tokens) / self.rate

    def give_back(self, name: str, now: float) -> None:
        if name in self.table:
            self.table[name] = (min(self.burst, self.tokens(name, now) + 1), now)


class RateLimiter:
    """Per-caller limit for callers that have authenticated (API key names, signed webhooks).

    Only a request whose credentials verified creates a bucket here, so the table is bounded by
    configuration (the keys, and the workflows with a webhook secret) and nothing is ever
    evicted from it: no amount of anonymous traffic can hand an exhausted key a fresh bucket.
    """

    def __init__(self, rate_per_minute: float, burst: int) -> None:
        self._buckets = _Buckets(rate_per_minute, burst)
        self._lock = threading.Lock()

    def check(self, key: str, now: float | None = None) -> float:
        """Take one token; return 0 if allowed, else the seconds until a token is free."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return self._buckets.take(key, now)

    def refund(self, key: str, now: float | None = None) -> None:
        """Return a token taken for a request that turned out to do nothing (a replay)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._buckets.give_back(key, now)

    def __len__(self) -> int:
        return len(self._buckets.table)


OVERFLOW = "*overflow*"  # not an address, so no caller's own bucket can be named so


class FailedAuthThrottle:
    """Failed authentication per client address (IPv6 by /64), in a bounded table.

    It is charged only when authentication fails and never consulted for a request whose
    credentials are good: a real key (or a correctly signed webhook) behind the same address as
    an attacker, such as a NAT or a reverse proxy, is never turned away by it. Guessing a key is
    not what it stops (keys are long random secrets); it bounds what failed attempts cost and
    tells a misconfigured client to back off.

    When the table is full, buckets that have refilled to the burst are dropped (they hold no
    debt, so forgetting them changes nothing); if it is still full, addresses not in the table
    share one overflow bucket. A flood from many addresses therefore throttles new
    unauthenticated callers together and can never reset a throttled address.
    """

    def __init__(
        self,
        rate_per_minute: float,
        burst: int,
        max_addresses: int = 10_000,
        sweep_interval: float = 1.0,
    ) -> None:
        self._buckets = _Buckets(rate_per_minute, burst)
        self._max = max_addresses
        self._sweep_interval = sweep_interval
        self._last_sweep = -math.inf
        self._lock = threading.Lock()

    def failed(self, address: str, now: float | None = None) -> float:
        """Charge one failed attempt; 0 if still within the budget, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        name = address_key(address)
        with self._lock:
            table = self._buckets.table
            if name not in table and len(table) >= self._max:
                self._sweep(now)
                if len(table) >= self._max:
                    name = OVERFLOW
            return self._buckets.take(name, now)

    def _sweep(self, now: float) -> None:
        # At most once per interval: under a flood from fresh addresses every failure would
        # otherwise scan the whole table.
        if now - self._last_sweep < self._sweep_interval:
            return
        self._last_sweep = now
        buckets = self._buckets
        for name in [n for n in buckets.table if buckets.tokens(n, now) >= buckets.burst]:
            del buckets.table[name]

    def refuse(self, request: Request, error: ApiError) -> ApiError:
        """The error to answer a failed authentication with: ``error``, or 429 past the budget."""
        address = client_address(request)
        wait = self.failed(address)
        if wait <= 0:
            return error
        return ApiError(
            429,
            "too_many_failed_attempts",
            f"too many failed authentication attempts from {address}; retry after "
            f"{retry_after_header(wait)} s (API_FAILED_AUTH_PER_MINUTE, API_FAILED_AUTH_BURST). "
            f"The last attempt failed with: {error.errors[0]['message']}",
            headers={"Retry-After": retry_after_header(wait)},
        )

    def __len__(self) -> int:
        return len(self._buckets.table)


def client_address(request: Request) -> str:
    """The TCP peer (behind a proxy, run uvicorn with --forwarded-allow-ips to use its header)."""
    return request.client.host if request.client else "unknown"


def address_key(address: str) -> str:
    """The throttle's name for an address: IPv4 as is, IPv6 by its /64 (one site's share)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class BodySizeLimit(HttpMiddleware):
    """ASGI middleware: bodies over ``max_bytes`` get 413 in the API's error shape.

    A declared Content-Length over the limit is refused before reading; a body without one
    is counted as it streams in, and reading stops at the limit.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            # Sent before the body is read: the connection closes.
            headers = [(b"connection", b"close")]
            await send_error(send, 413, "body_too_large", self._message(), headers)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(413, "body_too_large", self._message())
            return message

        await self.app(scope, counted, send)

    def _message(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes (API_MAX_BODY_BYTES)"
