"""A run as server-sent events: ``step``, ``delta`` (an AI answer as it is written),
``waiting`` and ``end`` (docs/streaming.md).

Nothing is kept between requests, so any API process serves any run's stream: each event's id
is a *cursor* saying everything the client has been sent, and ``Last-Event-ID`` hands it
back. The events are read from Temporal alone: ``describe`` (a read of the server's state,
no worker involved; every POLL_STREAMING_SECONDS while an answer is written) gives the
streamed text in the heartbeat details of the AI activities in flight (activities/ai_stream.py)
and the history's length; the status (a query the worker answers) is read again only when the
history grew, since nothing a status says changes without a new history event.

The cursor: ``<low>`` (every step visit numbered at most ``low`` was sent to its end), then
for each visit above it ``<seq>.e`` (ended) or ``<seq>.s`` (started) or
``<seq>.<call>.<attempt>.<chars>.<crc>`` (``chars`` characters of that call's attempt sent,
their CRC-32 in hex), then
``w<hash>`` for the waiting state sent, all joined by ``_``.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client

from api.server.auth import Principal
from api.server.executions.reading import Reader
from api.server.schemas import ExecutionPublic
from workflows.messages import StatusRequest, StepRecord
from workflows.status_view import SUMMARY

# How often a client's stream reads Temporal: quickly while an AI answer is being written
# (the 0.5 s goal of docs/streaming.md), less while nothing streams.
POLL_STREAMING_SECONDS = 0.05
POLL_SECONDS = 0.25
# The status read for a stream keeps values up to this size whole (not 4 KiB as for a status
# poll): a finished answer's last words then come with the status that says it ended.
ANSWER_BYTES = 64 * 1024
_STREAMED = ("ai", "agent")


@dataclass
class StepMark:
    """What a client has of one step visit."""

    ended: bool = False
    call: str | None = None
    attempt: int = 0
    chars: int = 0
    # CRC-32 of the ``chars`` characters sent (-1: unknown, some were skipped): at the step's
    # end it tells whether the result continues what was sent (an agent's earlier turn, or a
    # model that failed before a fallback answered, does not).
    crc: int = 0

    def encode(self, seq: int) -> str:
        if self.ended:
            return f"{seq}.e"
        if self.call is None:
            return f"{seq}.s"
        return f"{seq}.{self.call}.{self.attempt}.{self.chars}.{self.crc:x}"

    def sent(self, text: str, skipped: bool) -> None:
        self.chars += len(text)
        self.crc = -1 if skipped or self.crc < 0 else zlib.crc32(text.encode(), self.crc)

    def continued_by(self, answer: str) -> bool:
        prefix = answer[: self.chars]
        return len(prefix) == self.chars and zlib.crc32(prefix.encode()) == self.crc


@dataclass
class Cursor:
    """Everything a client was sent (the module docstring gives its text form)."""

    low: int = -1  # step visits are numbered from 0
    marks: dict[int, StepMark] = field(default_factory=dict)
    waiting: str = ""

    @classmethod
    def parse(cls, text: str | None) -> Cursor:
        """A cursor from ``Last-Event-ID``; anything unreadable starts from the run's state."""
        if not text:
            return cls()
        try:
            parts = text.split("_")
            cursor = cls(low=int(parts[0]))
            for part in parts[1:]:
                if part.startswith("w"):
                    cursor.waiting = part[1:]
                    continue
                seq, *rest = part.split(".")
                if rest == ["e"] or rest == ["s"]:
                    cursor.marks[int(seq)] = StepMark(ended=rest == ["e"])
                else:
                    call, attempt, chars, crc = rest
                    mark = StepMark(False, call, int(attempt), int(chars), int(crc, 16))
                    cursor.marks[int(seq)] = mark
            return cursor
        except ValueError:
            return cls()

    def seen(self, seq: int) -> StepMark | None:
        if seq <= self.low:
            return StepMark(ended=True)
        return self.marks.get(seq)

    def encode(self) -> str:
        open_seqs = [s for s, m in self.marks.items() if not m.ended]
        low = min(open_seqs) - 1 if open_seqs else max([self.low, *self.marks])
        self.low = max(self.low, low)
        self.marks = {s: m for s, m in self.marks.items() if s > self.low}
        parts = [str(self.low), *(m.encode(s) for s, m in sorted(self.marks.items()))]
        if self.waiting:
            parts.append(f"w{self.waiting}")
        return "_".join(parts)


@dataclass
class Stream:
    """One AI call's text in flight, from its activity's heartbeat details."""

    seq: int
    path: str | None
    call: str
    attempt: int
    offset: int
    text: str


class RunEvents:
    """One client's events of one run, from ``cursor`` on."""

    def __init__(
        self, reader: Reader, client: Client, execution_id: str, key: Principal, cursor: Cursor
    ) -> None:
        self._reader, self._client = reader, client
        self._id, self._key, self._cursor = execution_id, key, cursor
        self._history = -1
        self._state: ExecutionPublic | None = None
        limit = reader.settings.api_status_max_bytes
        self._request = StatusRequest(
            value_bytes=ANSWER_BYTES, budget_bytes=4 * ANSWER_BYTES, max_bytes=limit
        )

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Events until the run ends (an ``end`` event), polling Temporal in between."""
        handle = self._client.get_workflow_handle(self._id)
        while True:
            description = await handle.describe()
            if description.history_length != self._history or self._state is None:
                self._history = description.history_length
                self._state = await self._reader.get(self._id, self._key, self._request)
            streams = await self._streams(description.raw_description.pending_activities)
            for event in await self._step_events(self._state, streams):
                yield event
            if self._state.status != "running":
                data = {"status": self._state.status, "error": _error(self._state)}
                yield self._event("end", data)
                return
            writing = streams or any(
                r.status == "running" and r.type in _STREAMED for r in self._state.steps
            )
            await asyncio.sleep(POLL_STREAMING_SECONDS if writing else POLL_SECONDS)

    async def _streams(self, pending: Any) -> dict[int, Stream]:
        streams: dict[int, Stream] = {}
        for activity in pending:
            if not activity.heartbeat_details.payloads:
                continue
            details = await self._client.data_converter.decode(activity.heartbeat_details.payloads)
            stream = details[0].get("stream") if details and isinstance(details[0], dict) else None
            if not isinstance(stream, dict) or not isinstance(stream.get("seq"), int):
                continue
            if stream.get("attempt") != activity.attempt:
                continue  # a retry that has not streamed yet: Temporal keeps the last details
            streams[stream["seq"]] = Stream(
                stream["seq"],
                stream.get("path"),
                activity.activity_id,
                activity.attempt,
                int(stream.get("offset") or 0),
                str(stream.get("text") or ""),
            )
        return streams

    async def _step_events(
        self, state: ExecutionPublic, streams: dict[int, Stream]
    ) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for record in sorted(state.steps, key=lambda r: r.seq):
            mark = self._cursor.seen(record.seq)
            if mark is not None and mark.ended:
                continue
            if mark is None:  # a step the client has not heard of: its state now
                ended = record.status != "running"
                mark = self._cursor.marks[record.seq] = StepMark(ended=ended)
                events.append(self._event("step", _step(record)))
                if ended:
                    continue
            stream = streams.get(record.seq)
            if stream is not None:
                events += self._delta(record, mark, stream)
            if record.status != "running":
                if mark.call is not None or record.type in _STREAMED:
                    events += self._rest_of_answer(record, mark, await self._answer(record))
                mark.ended = True
                events.append(self._event("step", _step(record)))
        waiting = _waiting(state)
        if waiting != self._cursor.waiting:
            self._cursor.waiting = waiting
            if waiting:
                data = {"for": state.waiting_for, "until": _iso(state.waiting_until)}
                events.append(self._event("waiting", data))
        return events

    def _delta(self, record: StepRecord, mark: StepMark, stream: Stream) -> list[dict[str, Any]]:
        restart = mark.call == stream.call and mark.attempt != stream.attempt
        if mark.call != stream.call or mark.attempt != stream.attempt:
            mark.call, mark.attempt, mark.chars, mark.crc = stream.call, stream.attempt, 0, 0
        end = stream.offset + len(stream.text)
        if end <= mark.chars:
            return []
        start = max(mark.chars, stream.offset)
        text = stream.text[start - stream.offset :]
        skipped = start > mark.chars  # fell behind the tail the heartbeat keeps
        mark.chars = start
        mark.sent(text, skipped)
        data = _delta_data(record, text, stream.call, stream.attempt)
        if restart:
            data["restart"] = True  # a retried attempt: its answer starts again
        return [self._event("delta", data)]

    async def _answer(self, record: StepRecord) -> str | None:
        """The step's whole answer: from its record, or (summarised there, over 4 KiB) from
        the run's variable, asked for in full."""
        for name, value in record.output_vars.items():
            if not isinstance(value, dict):
                continue
            text = value.get("text")
            if isinstance(text, str):
                return text
            if SUMMARY in value or (isinstance(text, dict) and SUMMARY in text):
                limit = self._reader.settings.api_status_max_bytes
                request = StatusRequest(variables="full", names=[name], max_bytes=limit)
                full = (await self._reader.get(self._id, self._key, request)).outputs.get(name)
                if isinstance(full, dict) and isinstance(full.get("text"), str):
                    return str(full["text"])
        return None

    def _rest_of_answer(
        self, record: StepRecord, mark: StepMark, text: str | None
    ) -> list[dict[str, Any]]:
        """What the stream's last heartbeat did not carry, from the step's result; the whole
        answer as a call of its own (``"call": "result"``) when the result does not continue
        what was sent (or nothing was)."""
        if text is None or record.status != "success":
            return []
        if mark.call is None or not mark.continued_by(text):
            mark.call, mark.attempt, mark.chars, mark.crc = "result", 0, 0, 0
        rest = text[mark.chars :]
        if not rest:
            return []
        mark.sent(rest, False)
        data = _delta_data(record, rest, mark.call, mark.attempt)
        return [self._event("delta", data)]

    def _event(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"event": name, "id": self._cursor.encode(), "data": json.dumps(data)}


def _step(record: StepRecord) -> dict[str, Any]:
    return {"path": record.path or record.step_id, "step_id": record.step_id,
            "type": record.type, "status": record.status, "seq": record.seq}  # fmt: skip


def _delta_data(record: StepRecord, text: str, call: str | None, attempt: int) -> dict[str, Any]:
    return {"path": record.path or record.step_id, "seq": record.seq, "text": text,
            "call": call, "attempt": attempt}  # fmt: skip


def _waiting(state: ExecutionPublic) -> str:
    if not state.waiting_for:
        return ""
    last = max((s.seq for s in state.steps), default=0)
    key = f"{state.waiting_for}|{_iso(state.waiting_until)}|{last}"
    return format(zlib.crc32(key.encode()), "x")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _error(state: ExecutionPublic) -> dict[str, Any] | None:
    return state.error.model_dump(mode="json") if state.error is not None else None
