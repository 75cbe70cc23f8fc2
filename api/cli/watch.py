"""`wfe watch ID` (and `wfe run --wait`): a run as it happens, AI answers as they are written.

Reads ``GET /api/executions/{id}/events`` (docs/streaming.md): a ``delta`` is printed the
moment it arrives, a finished step as its one-line summary (from the status answer, as the
polling follow prints it). A dropped connection resumes from the last event id; an API
without the events endpoint (older) is followed by polling instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.text import Text

from api.cli.app import ApiKey, ApiUrl, app, connect, error
from api.cli.client import DEFAULT_API_URL, ApiClient, ApiFailure
from api.cli.output import (
    EXIT_TIMEOUT,
    WaitTimeout,
    finish,
    follow,
    reporting,
    stdout,
    step_line,
    url_path,
)

# How long one read may wait: the API pings every 15 s, so silence past this is a lost link.
READ_TIMEOUT_SECONDS = 30.0


def sse_events(response: httpx.Response) -> Iterator[tuple[str, str, Any]]:
    """``(event, id, data)`` of each server-sent event (comments and pings skipped)."""
    event, ident, data = "", "", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield event or "message", ident, json.loads("\n".join(data))
            event, data = "", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("id:"):
            ident = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


class Watcher:
    """Prints one run's events until it ends; answers its final status."""

    def __init__(
        self, api: ApiClient, out: Console, execution_id: str, timeout: float | None
    ) -> None:
        self._api, self._out, self._id = api, out, execution_id
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._printed: set[Any] = set()
        self._open: tuple[Any, Any] | None = None  # the answer being printed: (seq, call)
        self._last_id: str | None = None

    def run(self) -> dict[str, Any]:
        path = f"/api/executions/{url_path(self._id)}/events"
        while True:
            headers = {"Last-Event-ID": self._last_id} if self._last_id else None
            try:
                with self._api.stream(path, headers, self._read_timeout()) as response:
                    for event, ident, data in sse_events(response):
                        self._last_id = ident or self._last_id
                        state = self._on(event, data)
                        if state is not None:
                            return state
                        self._check_deadline()
            except httpx.ReadTimeout:
                pass
            self._check_deadline()  # then reconnect from the last event

    def _read_timeout(self) -> float:
        if self._deadline is None:
            return READ_TIMEOUT_SECONDS
        return max(0.05, min(READ_TIMEOUT_SECONDS, self._deadline - time.monotonic()))

    def _check_deadline(self) -> None:
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._end_line()
            raise WaitTimeout

    def _on(self, event: str, data: Any) -> dict[str, Any] | None:
        if event == "delta":
            self._delta(data)
        elif event == "step" and data.get("status") == "running":
            self._end_line()
            self._out.print(f"  … running   {data.get('path')}", soft_wrap=True)
        elif event == "step":
            self._end_line()
            if (data.get("seq"), data.get("step_id")) not in self._printed:
                self._finished_steps()  # one status read prints every step ended so far
        elif event == "waiting":
            self._end_line()
            self._out.print(f"  … waiting   for {data.get('for')}", soft_wrap=True)
        elif event == "end":
            self._end_line()
            return self._finished_steps()
        return None

    def _delta(self, data: dict[str, Any]) -> None:
        key = (data.get("seq"), data.get("call"))
        if key != self._open:
            self._end_line()
            self._out.print(f"  ▸ {data.get('path')}: ", end="", soft_wrap=True)
            self._open = key
        elif data.get("restart"):
            self._out.print(Text(" [retried: the answer starts again]", "dim"))
            self._out.print(f"  ▸ {data.get('path')}: ", end="", soft_wrap=True)
        self._out.print(Text(str(data.get("text", ""))), end="", soft_wrap=True)
        self._out.file.flush()

    def _end_line(self) -> None:
        if self._open is not None:
            self._out.print()
            self._open = None

    def _finished_steps(self) -> dict[str, Any]:
        state: dict[str, Any] = self._api.get(f"/api/executions/{url_path(self._id)}")
        for step in state.get("steps") or []:
            key = (step.get("seq"), step.get("step_id"))
            if step.get("status") != "running" and key not in self._printed:
                self._printed.add(key)
                self._out.print(step_line(step), soft_wrap=True)
        return state


def follow_live(
    api: ApiClient,
    out: Console,
    execution_id: str,
    timeout: float | None,
    interval: float,
    show: bool = True,
) -> dict[str, Any]:
    """Follow a run to its end: from its events (answers as they are written) when shown,
    else (or from an API without them) by polling its status."""
    if show:
        try:
            return Watcher(api, out, execution_id, timeout).run()
        except ApiFailure as err:
            if err.status != 404:
                raise
    return follow(api, out, execution_id, timeout, interval, show)


@app.command()
def watch(
    execution_id: Annotated[str, typer.Argument(help="The execution to follow.")],
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Give up after this many seconds (exit 2).")
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Follow an execution as it runs: each step, AI answers as they are written, the result.

    Exit status: 0 completed, 1 failed or cancelled, 2 still running at --timeout.
    """
    out = stdout()
    with reporting(), connect(api_url, api_key) as api:
        try:
            state = follow_live(api, out, execution_id, timeout, 0.5)
        except WaitTimeout:
            error(f"timed out after {timeout:g}s: execution {execution_id} is still running")
            raise typer.Exit(EXIT_TIMEOUT) from None
    finish(out, state)
