"""Rate limits cannot be reset by anyone, and failed authentication is throttled per address.

The keys' buckets live apart from anything unauthenticated traffic can create, and are never
evicted; failed attempts are charged to the client address in a bounded table whose overflow
only lands on unauthenticated callers. Real uvicorn and dev server; requests go to 127.0.0.1
(some from the source address 127.0.0.2, to show the throttle is per address).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client

from activities.runtime.settings import Settings
from api.server.limits import FailedAuthThrottle, RateLimiter, address_key
from api.server.triggers import signed_headers
from tests.conftest import ADMIN_KEY, serve_api

VIEWER_KEY = "viewer-key-hardening-0123456789"
KEYS = [
    {"key": ADMIN_KEY, "name": "test-admin", "role": "admin", "workflows": "*"},
    {"key": VIEWER_KEY, "name": "hardening-viewer", "role": "viewer", "workflows": "*"},
]
SECRET = "limits-hook-secret"


def limited(settings: Settings, **update: Any) -> Settings:
    return settings.model_copy(
        update={
            "api_keys": SecretStr(json.dumps(KEYS)),
            "webhook_secrets": SecretStr(json.dumps({"default": SECRET})),
            # Almost no refill: a bucket emptied in the test stays empty for the test.
            "api_rate_limit_per_minute": 0.06,
            "api_rate_limit_burst": 3,
            **update,
        }
    )


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _request(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def pipelined(base_url: str, requests: list[bytes], connections: int = 8) -> list[int]:
    """Send raw HTTP/1.1 requests pipelined over a few connections; the status codes.

    The API runs in this test's event loop, so the client's cost is the server's: httpx spends
    several milliseconds of that loop per request (about 45 s for this flood), pipelining a
    fraction of one.
    """
    host, _, port = base_url.removeprefix("http://").partition(":")

    async def one(batch: list[bytes]) -> list[int]:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"".join(batch))
        await writer.drain()
        codes = []
        for _ in batch:
            head = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
            codes.append(int(head[0].split()[1]))
            length = next(
                int(line.partition(b":")[2])
                for line in head
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
        writer.close()
        await writer.wait_closed()
        return codes

    batches = await asyncio.gather(*(one(requests[i::connections]) for i in range(connections)))
    # Back in request order, so a caller can index the answers.
    ordered = [0] * len(requests)
    for i, batch in enumerate(batches):
        ordered[i::connections] = batch
    return ordered


async def test_ten_thousand_anonymous_requests_do_not_reset_an_exhausted_key(
    client: Client, settings: Settings
) -> None:
    """The probe's attack: exhaust a key, then 10,050 requests naming fresh bucket keys."""
    async with (
        serve_api(limited(settings), client) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as api,
    ):
        answers = [
            (await api.get("/api/workflows", headers=bearer(ADMIN_KEY))).status_code
            for _ in range(4)
        ]
        assert answers == [200, 200, 200, 429]

        # The old limiter made a bucket for every unsigned webhook's workflow id and evicted
        # the oldest at 10,000: 10,050 fresh ids pushed the key's empty bucket out. Add
        # unknown keys for good measure (failed authentication).
        flood = [
            _request("POST", f"/api/hooks/w{n}-{uuid.uuid4().hex}", body=b"{}")
            for n in range(10_050)
        ] + [
            _request("GET", "/api/workflows", bearer(f"guess-{n}-{uuid.uuid4().hex}"))
            for n in range(500)
        ]
        codes = await pipelined(url, flood)
        assert len(codes) == len(flood) and set(codes) <= {401, 429}, set(codes)

        still = await api.get("/api/workflows", headers=bearer(ADMIN_KEY))
        assert still.status_code == 429, still.text
        assert still.json()["errors"][0]["code"] == "rate_limited"
        assert int(still.headers["retry-after"]) >= 1
        # Another key's bucket is its own and untouched by all of it.
        other = await api.get("/api/workflows", headers=bearer(VIEWER_KEY))
        assert other.status_code == 200


async def test_failed_authentication_is_throttled_per_address_and_never_blocks_a_real_key(
    client: Client, settings: Settings
) -> None:
    configured = limited(
        settings,
        api_rate_limit_burst=100,
        api_failed_auth_burst=5,
        api_failed_auth_per_minute=0.06,
    )
    async with serve_api(configured, client) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as here:
            codes = [
                (await here.get("/api/executions", headers=bearer(f"wrong-{n}"))).status_code
                for n in range(5)
            ]
            assert codes == [401] * 5
            throttled = await here.get("/api/executions", headers=bearer("wrong-again"))
            assert throttled.status_code == 429
            error = throttled.json()["errors"][0]
            assert error["code"] == "too_many_failed_attempts"
            assert "API_FAILED_AUTH_PER_MINUTE" in error["message"]
            assert "from 127.0.0.1" in error["message"]
            assert int(throttled.headers["retry-after"]) >= 1
            assert (await here.get("/api/executions")).status_code == 429  # no key: also failed
            # A bad webhook signature is a failed attempt from the same address.
            hook = await here.post("/api/hooks/alpha", json={})
            assert hook.status_code == 429

            # A real key from the very same address is not held back (a NAT or a proxy in
            # front of the API must not let one bad client lock everyone out).
            for _ in range(3):
                ok = await here.get("/api/workflows", headers=bearer(ADMIN_KEY))
                assert ok.status_code == 200, ok.text

        # Another address has its own budget.
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(base_url=url, timeout=30, transport=transport) as there:
            elsewhere = await there.get("/api/executions", headers=bearer("wrong-there"))
            assert elsewhere.status_code == 401
            assert elsewhere.headers["www-authenticate"] == "Bearer"


async def test_a_signed_webhook_is_not_held_back_by_its_addresss_failures(
    client: Client, settings: Settings, worker: Any
) -> None:
    configured = limited(settings, api_failed_auth_burst=2, api_failed_auth_per_minute=0.06)
    async with serve_api(configured, client) as url:
        document = {
            "id": "alpha",
            "triggers": [{"type": "webhook"}],
            "steps": [{"id": "mark", "type": "set", "values": {"ok": True}}],
        }
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            saved = await api.put("/api/workflows/alpha", json=document, headers=bearer(ADMIN_KEY))
            assert saved.status_code == 201, saved.text
            codes = [(await api.post("/api/hooks/alpha", json={})).status_code for _ in range(4)]
            assert codes == [401, 401, 429, 429]
            body = b"{}"
            started = await api.post(
                "/api/hooks/alpha",
                content=body,
                headers=signed_headers(SECRET.encode(), body, delivery="after-flood"),
            )
            assert started.status_code == 202, started.text


def test_the_failed_attempt_table_is_bounded_and_its_overflow_resets_nobody() -> None:
    throttle = FailedAuthThrottle(rate_per_minute=60.0, burst=2, max_addresses=100)
    now = 1000.0
    assert [throttle.failed("10.0.0.1", now) for _ in range(2)] == [0.0, 0.0]
    assert throttle.failed("10.0.0.1", now) > 0  # exhausted

    # A flood from 10,000 fresh addresses cannot push 10.0.0.1 out (and so reset it): the
    # table stops at its bound and newcomers share one overflow bucket instead.
    waits = [throttle.failed(f"172.16.{n // 256}.{n % 256}", now) for n in range(10_000)]
    assert len(throttle) <= 101
    assert throttle.failed("10.0.0.1", now) > 0
    assert waits[:99] == [0.0] * 99  # the first ones found room of their own
    assert all(w > 0 for w in waits[101:])  # the rest share the overflow bucket's burst
    assert throttle.failed("198.51.100.7", now) > 0

    # Once buckets have refilled, they hold no debt and are swept to make room again.
    later = now + 60
    assert throttle.failed("198.51.100.7", later) == 0.0
    assert len(throttle) <= 101


def test_the_keys_limiter_never_evicts() -> None:
    """Buckets of authenticated callers only: a key's empty bucket stays empty however many
    other names are charged (there is no size at which the oldest is dropped)."""
    limiter = RateLimiter(rate_per_minute=0.06, burst=1)
    assert limiter.check("test-admin", 0.0) == 0.0
    assert limiter.check("test-admin", 0.0) > 0
    for n in range(20_000):
        limiter.check(f"hook:w{n}", 0.0)
    assert limiter.check("test-admin", 1.0) > 0
    limiter.refund("hook:w1", 1.0)
    assert limiter.check("hook:w1", 1.0) == 0.0


def test_ipv6_callers_are_throttled_by_their_slash_64() -> None:
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("::ffff:192.0.2.9") == "192.0.2.9"
    assert address_key("203.0.113.5") == "203.0.113.5"
    assert address_key("testclient") == "testclient"
