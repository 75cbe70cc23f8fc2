"""What the API's own ASGI middleware share: HTTP requests only, and an error answer sent
before the app is reached (in the API's error shape)."""

from __future__ import annotations

import json
from typing import Any

from api.server.errors import error_body


class HttpMiddleware:
    """An ASGI middleware that acts on HTTP requests (:meth:`http`); anything else (the
    lifespan, websockets) passes through untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        raise NotImplementedError


async def send_error(
    send: Any, status: int, code: str, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """Answer ``status`` with one error (``headers`` besides its JSON content type)."""
    body = json.dumps(error_body([{"code": code, "message": message}])).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
