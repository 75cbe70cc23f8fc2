"""Per-key request rate limit (a token bucket per key name, in this API process)."""

from __future__ import annotations

import json
import math
import threading
import time
from typing import Any

from api.errors import ApiError


class RateLimiter:
    """``rate_per_minute`` sustained, ``burst`` at once; ``check`` answers the wait needed."""

    def __init__(self, rate_per_minute: float, burst: int, max_keys: int = 10_000) -> None:
        self._rate = rate_per_minute / 60.0
        self._burst = float(burst)
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, now: float | None = None) -> float:
        """Take one token; return 0 if allowed, else the seconds until a token is free."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= 1:
                self._store(key, tokens - 1, now)
                return 0.0
            self._store(key, tokens, now)
            return (1 - tokens) / self._rate

    def _store(self, key: str, tokens: float, now: float) -> None:
        if key not in self._buckets and len(self._buckets) >= self._max_keys:
            # Forget the fullest buckets first: they are the least constrained callers.
            self._buckets.pop(next(iter(self._buckets)))
        self._buckets[key] = (tokens, now)


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class BodySizeLimit:
    """ASGI middleware: bodies over ``max_bytes`` get 413 in the API's error shape.

    A declared Content-Length over the limit is refused before reading; a body without one
    is counted as it streams in, and reading stops at the limit.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
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

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"errors": [{"code": "body_too_large", "message": self._message()}]})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})
