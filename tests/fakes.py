"""Real HTTP servers on 127.0.0.1 that stand in for the internet in tests.

- :class:`FakeOpenRouter` speaks OpenRouter's chat-completions protocol (and its error body
  ``{"error": {"code", "message", "metadata"}}``) with scripted replies and faults.
- :class:`HttpSink` is a webhook target that records every delivery with its Idempotency-Key
  (a side-effect ledger: which Idempotency-Keys were applied) and can answer with scripted faults.

Both run ``ThreadingHTTPServer`` in a thread, so a hanging reply never blocks the test's event
loop, and a reply that waits notices when the client hangs up (``disconnects``).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; str/bytes sent as-is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a hang if long)
    # Server-sent events instead of ``body``: each is written and flushed, ``event_delay``
    # apart, then the connection closes (HTTP/1.1 with no length: the body ends there).
    events: list[str] | None = None
    event_delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class ScriptedServer:
    """A loopback HTTP server answering from per-path scripts, else a default handler."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.disconnects: list[Recorded] = []
        self._scripts: dict[str, deque[Reply]] = {}
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                record = Recorded(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.monotonic(),
                )
                with server._lock:
                    server.requests.append(record)
                reply = server._next_reply(record)
                if reply.delay and not server._wait_or_hangup(self.connection, reply.delay):
                    with server._lock:
                        server.disconnects.append(record)
                    return
                if reply.events is not None:
                    self._stream(record, reply)
                    return
                payload = reply.body
                if isinstance(payload, dict | list):
                    data = json.dumps(payload).encode()
                    content_type = "application/json"
                elif isinstance(payload, str):
                    data = payload.encode()
                    content_type = "text/plain"
                else:
                    data = payload or b""
                    content_type = "application/octet-stream"
                try:
                    self.send_response(reply.status)
                    headers = {"Content-Type": content_type, **reply.headers}
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    with server._lock:
                        server.disconnects.append(record)

            def _stream(self, record: Recorded, reply: Reply) -> None:
                self.close_connection = True
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for event in reply.events or []:
                        self.wfile.write(event.encode())
                        self.wfile.flush()
                        if reply.event_delay:
                            time.sleep(reply.event_delay)
                except (BrokenPipeError, ConnectionResetError):
                    with server._lock:
                        server.disconnects.append(record)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # stop() waits for the serving loop to look up; every test using `settings` stops one.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- scripting --------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget what was asked and what is scripted (one fake, several rounds of a test)."""
        with self._lock:
            self.requests.clear()
            self._scripts.clear()

    def script(self, path: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts.setdefault(path, deque()).extend(replies)

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] == path]

    def _next_reply(self, record: Recorded) -> Reply:
        with self._lock:
            queue = self._scripts.get(record.path.split("?")[0])
            if queue:
                return queue.popleft()
        return self.default_reply(record)

    def default_reply(self, record: Recorded) -> Reply:
        return Reply(404, {"error": "not scripted"})

    @staticmethod
    def _wait_or_hangup(conn: socket.socket, seconds: float) -> bool:
        """Sleep up to ``seconds``; False as soon as the client closes the connection."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            readable, _, _ = select.select([conn], [], [], 0.05)
            if readable:
                try:
                    if conn.recv(1, socket.MSG_PEEK) == b"":
                        return False
                except OSError:
                    return False
        return True


class HttpSink(ScriptedServer):
    """A webhook target: 200 with the request echoed, unless a path is scripted."""

    def default_reply(self, record: Recorded) -> Reply:
        try:
            received: Any = record.json()
        except ValueError:
            received = record.body.decode(errors="replace")
        return Reply(
            200, {"ok": True, "path": record.path, "method": record.method, "received": received}
        )

    def deliveries(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path.split("?")[0] == path]

    def ledger(self, path: str | None = None) -> dict[str, int]:
        """Idempotency-Key -> number of deliveries (the side-effect ledger)."""
        counts: dict[str, int] = {}
        for record in self.deliveries(path):
            key = record.headers.get("idempotency-key", "")
            counts[key] = counts.get(key, 0) + 1
        return counts


def completion(
    content: str,
    model: str = "openai/gpt-4o-mini",
    prompt_tokens: int = 12,
    completion_tokens: int = 5,
    cost: float | None = 0.00042,
) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if cost is not None:
        usage["cost"] = cost
    return {
        "id": "gen-test",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def tool_call_completion(
    *calls: tuple[str, Any],
    text: str = "",
    prompt_tokens: int = 20,
    completion_tokens: int = 8,
    cost: float | None = 0.0005,
) -> dict[str, Any]:
    """An answer that calls tools: ``(name, arguments)`` pairs (arguments as JSON text when a
    str is given, so tests can send arguments that are not JSON)."""
    answer = completion(text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                        cost=cost)  # fmt: skip
    answer["choices"][0]["message"]["tool_calls"] = [
        {
            "id": f"call_{index}",
            "type": "function",
            "function": {
                "name": name,
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            },
        }
        for index, (name, arguments) in enumerate(calls)
    ]
    answer["choices"][0]["finish_reason"] = "tool_calls"
    return answer


def openrouter_error(
    status: int, message: str, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error}


class FakeOpenRouter(ScriptedServer):
    """OpenRouter's /chat/completions; unscripted requests get ``responder(request_json)``."""

    PATH = "/api/v1/chat/completions"

    def __init__(self, responder: Callable[[dict[str, Any]], str] | None = None) -> None:
        super().__init__()
        self.responder = responder or (lambda body: "ok")

    @property
    def base_url(self) -> str:
        return self.url + "/api/v1"

    def completions(self) -> list[Recorded]:
        return self.requests_to(self.PATH)

    def then(self, *replies: Reply) -> None:
        self.script(self.PATH, *replies)

    def default_reply(self, record: Recorded) -> Reply:
        if record.path != self.PATH:
            return Reply(404, openrouter_error(404, "no such endpoint"))
        if record.headers.get("authorization") != "Bearer test-openrouter-key":
            return Reply(401, openrouter_error(401, "No auth credentials found"))
        body = record.json()
        return Reply(200, completion(self.responder(body), model=body.get("model", "m")))


def sse_events(
    answer: dict[str, Any], chunks: int = 4, cut: bool = False, error: dict[str, Any] | None = None
) -> list[str]:
    """A completion as OpenAI-style stream events: its text in ``chunks`` pieces, then a
    chunk with the finish reason and usage, then ``[DONE]``. ``cut``: the stream stops halfway
    (no finish, no [DONE]); ``error``: an error event takes the place of the second half."""
    message = answer["choices"][0]["message"]
    text = message.get("content") or ""
    size = max(1, -(-len(text) // chunks))
    pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
    base = {"id": answer.get("id", "gen"), "object": "chat.completion.chunk",
            "model": answer.get("model")}  # fmt: skip
    events = [": PROCESSING\n\n"]
    for piece in pieces:
        delta = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
        events.append(f"data: {json.dumps({**base, **delta})}\n\n")
    for index, call in enumerate(message.get("tool_calls") or []):
        delta = {"tool_calls": [{"index": index, **call}]}
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        events.append(f"data: {json.dumps(chunk)}\n\n")
    finish = {"index": 0, "delta": {}, "finish_reason": answer["choices"][0]["finish_reason"]}
    events.append(f"data: {json.dumps({**base, 'choices': [finish]})}\n\n")
    events.append(f"data: {json.dumps({**base, 'choices': [], 'usage': answer['usage']})}\n\n")
    events.append("data: [DONE]\n\n")
    if cut or error:
        events = events[: 1 + max(1, len(pieces) // 2)]
    if error:
        events.append(f"data: {json.dumps(error)}\n\n")
    return events


class FakeProvider(ScriptedServer):
    """An OpenAI-compatible /v1/chat/completions that reports no cost and streams when asked
    (``chunks`` pieces, ``chunk_delay`` apart); unscripted requests get ``responder(body)``."""

    PATH = "/v1/chat/completions"
    KEY = "test-provider-key"

    def __init__(
        self,
        responder: Callable[[dict[str, Any]], str] | None = None,
        chunks: int = 4,
        chunk_delay: float = 0.0,
    ) -> None:
        super().__init__()
        self.responder = responder or (lambda body: "ok")
        self.chunks = chunks
        self.chunk_delay = chunk_delay

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def completions(self) -> list[Recorded]:
        return self.requests_to(self.PATH)

    def then(self, *replies: Reply) -> None:
        self.script(self.PATH, *replies)

    def default_reply(self, record: Recorded) -> Reply:
        if record.path != self.PATH:
            return Reply(404, openrouter_error(404, "no such endpoint"))
        if record.headers.get("authorization") != f"Bearer {self.KEY}":
            return Reply(401, openrouter_error(401, "invalid api key"))
        body = record.json()
        answer = completion(self.responder(body), model=body.get("model", "m"), cost=None)
        if not body.get("stream"):
            return Reply(200, answer)
        return Reply(200, events=sse_events(answer, self.chunks), event_delay=self.chunk_delay)
