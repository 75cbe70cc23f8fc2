"""A lean HTTP/1.1 load generator for the start benchmark (bench/starts.py).

The API and the direct Temporal client share two cores with the Temporal server, so what the
load generator itself burns is taken from the side it measures: httpx spends ~2 ms of CPU on a
request, more than the Temporal client spends on a whole start. This client keeps one
keep-alive connection per request in flight and does nothing but write the request and read a
``Content-Length`` answer (what uvicorn sends), like wrk would.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class LeanHTTP:
    """Keep-alive connections to one ``host:port``, reused by requests in turn."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self._host, self._port = host, port
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post_json(self, path: str, body: Any) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{self._headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        if self._idle:
            try:
                return await self._exchange(*self._idle.pop(), head + payload)
            except (ConnectionError, asyncio.IncompleteReadError, IndexError, ValueError):
                pass  # the server closed it while idle (uvicorn: after 5 s); not processed
        connection = await asyncio.open_connection(self._host, self._port)
        return await self._exchange(*connection, head + payload)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
    ) -> tuple[int, bytes]:
        writer.write(request)
        status_line = await reader.readline()
        status = int(status_line.split()[1])  # IndexError on a closed connection
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = await reader.readexactly(length)
        self._idle.append((reader, writer))
        return status, answer

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
