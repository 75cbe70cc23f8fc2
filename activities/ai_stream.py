"""Streamed chat completions: server-sent chunks folded back into one answer.

The provider is asked with ``"stream": true`` and sends ``data: {chunk}`` events, then
``data: [DONE]``. The chunks are folded into the shape of a non-streamed answer (``choices[0]
.message`` with the whole ``content`` and ``tool_calls``, ``usage``, ``model``), so the
activity's result is what it was without streaming. As text arrives it is published in the
activity's heartbeat details (:class:`StreamProgress`), where the API reads it (docs/streaming.md).

A stream that stops before its end (no ``[DONE]`` and no ``finish_reason``) is a transport
failure: Temporal retries the attempt, which asks again from the start. A provider that
answers plain JSON (it ignores ``stream``) is read as before.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from temporalio import activity

from activities.failures import retryable
from workflows.errors import FailureType

# Heartbeat details keep the answer's last this many characters: a client that fell further
# behind gets the rest from the step's result when it ends.
STREAM_TAIL_CHARS = 32_000
# How often text is handed to the heartbeat (which the worker flushes to Temporal at most
# every HEARTBEAT_FLUSH): more often would only build details nobody sends.
PUBLISH_EVERY_SECONDS = 0.05


class StreamProgress:
    """The answer so far, published as the activity's heartbeat details.

    Heartbeat details are kept by Temporal and shown by it (and by the events stream), so the
    text is redacted like a result, and an end that may be the beginning of a secret waits
    until more arrives (or the answer ends): a secret being written never shows in part.
    """

    def __init__(
        self,
        seq: int | None,
        path: str | None,
        redact: Callable[[str], str] | None = None,
        unsafe_tail: Callable[[str], int] | None = None,
    ) -> None:
        self._seq, self._path = seq, path
        self._redact, self._unsafe_tail = redact, unsafe_tail
        self._parts: list[str] = []
        self._length = 0
        self._published = 0.0
        self._ended = False

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._length += len(text)
        now = time.monotonic()
        if now - self._published >= PUBLISH_EVERY_SECONDS:
            self._published = now
            self.publish()

    def details(self) -> list[Any]:
        """``{"stream": {"seq", "path", "attempt", "offset", "text"}}``: ``text`` is the
        answer's tail starting at character ``offset``. Temporal keeps an attempt's last
        details into the next attempt: ``attempt`` tells a reader whose text it is."""
        whole = "".join(self._parts)
        self._parts = [whole] if whole else []
        text = self._redact(whole) if self._redact else whole
        if not self._ended and self._unsafe_tail is not None:
            text = text[: len(text) - self._unsafe_tail(text)]
        tail = text[-STREAM_TAIL_CHARS:]
        attempt = activity.info().attempt if activity.in_activity() else 1
        stream = {"seq": self._seq, "path": self._path, "attempt": attempt}
        stream["offset"] = len(text) - len(tail)
        return [{"stream": {**stream, "text": tail}}]

    def end(self) -> None:
        """The answer is whole: publish all of it."""
        self._ended = True
        self.publish()

    def publish(self) -> None:
        if activity.in_activity():
            activity.heartbeat(*self.details())


async def sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (comment lines such as ``: PROCESSING`` and
    other fields skipped)."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


class ChunkFolder:
    """Chat-completion chunks folded into one non-streamed answer."""

    def __init__(self, progress: StreamProgress) -> None:
        self._progress = progress
        self._text: list[str] = []
        self._calls: dict[int, dict[str, Any]] = {}
        self._answer: dict[str, Any] = {}
        self.finish_reason: str | None = None
        self.saw_choices = False
        self.done = False

    def add(self, data: str) -> dict[str, Any] | None:
        """Take one event's data; a chunk that is an error is handed back."""
        if data.strip() == "[DONE]":
            self.done = True
            return None
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise retryable(
                "the AI provider streamed a chunk that is not JSON", FailureType.PROVIDER_RETRYABLE
            ) from None
        if not isinstance(chunk, dict):
            return None
        if isinstance(chunk.get("error"), dict):
            return chunk
        for key in ("id", "model", "usage"):
            if chunk.get(key):
                self._answer[key] = chunk[key]
        choices = chunk.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            self.saw_choices = True
            self._choice(choices[0])
        return None

    def _choice(self, choice: dict[str, Any]) -> None:
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        content = delta.get("content")
        if isinstance(content, str) and content:
            self._text.append(content)
            self._progress.add(content)
        for raw in delta.get("tool_calls") or []:
            if isinstance(raw, dict):
                self._tool_call(raw)

    def _tool_call(self, raw: dict[str, Any]) -> None:
        given = raw.get("index")
        index = given if isinstance(given, int) else len(self._calls)
        call = self._calls.setdefault(
            index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        )
        if raw.get("id"):
            call["id"] = raw["id"]
        function = raw.get("function")
        if isinstance(function, dict):
            call["function"]["name"] += str(function.get("name") or "")
            call["function"]["arguments"] += str(function.get("arguments") or "")

    @property
    def complete(self) -> bool:
        return self.done or self.finish_reason is not None

    def answer(self) -> dict[str, Any]:
        """The answer as a non-streamed completion would have been."""
        if not self.saw_choices:
            return {**self._answer, "choices": []}
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._text)}
        if self._calls:
            message["tool_calls"] = [self._calls[i] for i in sorted(self._calls)]
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        return {**self._answer, "choices": [choice]}


def broken_stream() -> Exception:
    return retryable(
        "the AI provider's stream broke off before the answer ended",
        FailureType.PROVIDER_RETRYABLE,
    )
