"""The benchmark's HTTP target: a minimal keep-alive HTTP/1.1 server answering 200 JSON.

    python -m bench.target --port 8099

It runs in its own process so that it never competes with the worker for the GIL, and it is
a bare asyncio protocol (no framework) so that its own cost, well under a millisecond, stays
small next to the per-step cost being measured. It reads each request completely (headers and
Content-Length body) before answering, so pipelined or split writes are handled correctly.
"""

from __future__ import annotations

import argparse
import asyncio
import json

_REPLY_BODY = json.dumps({"ok": True}).encode()
_REPLY = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(_REPLY_BODY)).encode() + b"\r\n"
    b"\r\n" + _REPLY_BODY
)
_HEADER_END = b"\r\n\r\n"


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or b"0")
    return 0


class _Answer(asyncio.Protocol):
    """Answers every complete request on the connection with the same 200 JSON reply."""

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(_HEADER_END)
            if end < 0:
                return
            total = end + len(_HEADER_END) + _content_length(self._buffer[:end])
            if len(self._buffer) < total:
                return
            self._buffer = self._buffer[total:]
            assert self._transport is not None
            self._transport.write(_REPLY)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Answer, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
