"""How `wfe` shows things: statuses, step lines, tables, JSON, and following a run live."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.json import JSON
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from api.cli.app import error
from api.cli.client import (
    ApiClient,
    ClientError,
)
from workflows.errors import EngineError

STEP_STYLES = {
    "success": ("✓", "green"),
    "failed": ("✗", "red"),
    "cancelled": ("⊘", "yellow"),
    "running": ("…", "cyan"),
}
RUN_STYLES = {"completed": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}
EXIT_TIMEOUT = 2
PIPE_WIDTH = 200


class WaitTimeout(EngineError):
    """``run --wait --timeout`` ran out before the execution finished."""


def stdout() -> Console:
    """Console on stdout (made per command, so COLUMNS and redirections apply).

    Piped output is not cut to 80 columns (tables stay one row per line) unless COLUMNS says.
    """
    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    return out


@contextlib.contextmanager
def reporting() -> Iterator[None]:
    """Turn a ClientError into its `error:` lines and exit status 1."""
    try:
        yield
    except ClientError as err:
        for line in err.lines():
            error(line)
        raise typer.Exit(1) from None


def url_path(*parts: str) -> str:
    """Quote ids for a URL path (an id can never reach another route)."""
    return "/".join(quote(part, safe="") for part in parts)


def read_document(path: Path) -> tuple[bytes, Any]:
    """A definition file's bytes and parsed JSON; a ClientError naming the file otherwise."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ClientError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return raw, json.loads(raw)
    except UnicodeDecodeError:
        raise ClientError(f"{path}: not UTF-8 text") from None
    except ValueError as err:
        raise ClientError(f"{path}: not valid JSON: {err}") from None


def json_argument(value: str, option: str) -> Any:
    """Parse an option's JSON, given inline or as ``@file.json``."""
    if value.startswith("@"):
        source = Path(value[1:])
        try:
            value = source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise ClientError(f"{option}: cannot read {source}: {reason}") from None
    try:
        return json.loads(value)
    except ValueError as err:
        raise ClientError(f"{option} is not valid JSON: {err}") from None


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def when(value: Any) -> str:
    moment = parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def duration(start: Any, end: Any) -> str:
    first, last = parse_time(start), parse_time(end)
    if first is None or last is None:
        return "-"
    seconds = max((last - first).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def status_text(status: str) -> Text:
    return Text(status, style=RUN_STYLES.get(status, ""))


_ITERATION = re.compile(r"(.*)\[(\d+)\]")


def step_path(step: dict[str, Any]) -> str:
    """Where a step ran: ``each[3].fetch`` inside iteration 3 of ``each``, ``fan.b.fetch`` in
    branch ``b`` of ``fan``; a top-level step's id."""
    return str(step.get("path") or step.get("step_id", "?"))


def tree_order(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Step records in the shape of the run: each nested step under its own iteration (by
    index) or branch (in the order they started), after the step that holds them; steps of
    one list in the order they ran. Records come in completion order, which interleaves
    iterations."""
    first: dict[str, int] = {}
    for step in steps:
        seq = int(step.get("seq") or 0)
        for prefix in _prefixes(step_path(step)):
            first[prefix] = min(first.get(prefix, seq), seq)

    def key(step: dict[str, Any]) -> list[tuple[int, ...]]:
        path = step_path(step)
        segments = path.split(".")
        parts: list[tuple[int, ...]] = []
        done = ""
        for number, segment in enumerate(segments):
            found = _ITERATION.fullmatch(segment)
            base = f"{done}.{found.group(1) if found else segment}".lstrip(".")
            if number == len(segments) - 1 and not found:
                parts.append((first.get(base, 0), -1, 0, int(step.get("seq") or 0)))
            else:  # a list the step is nested in: after its holder, iterations by index
                parts.append((first.get(base, 0), int(found.group(2)) if found else -1, 1))
            done = f"{done}.{segment}".lstrip(".")
        return parts

    return sorted(steps, key=key)


def _prefixes(path: str) -> list[str]:
    """``a[1].b.c`` -> ``a``, ``a[1]``, ``a[1].b``, ``a[1].b.c``."""
    found, done = [], ""
    for segment in path.split("."):
        iteration = _ITERATION.fullmatch(segment)
        if iteration:
            found.append(f"{done}.{iteration.group(1)}".lstrip("."))
        done = f"{done}.{segment}".lstrip(".")
        found.append(done)
    return found


def step_line(step: dict[str, Any]) -> Text:
    """``✓ success  step_id  name  0.12s`` (plus the error of a failed step)."""
    status = str(step.get("status", "?"))
    mark, style = STEP_STYLES.get(status, ("?", ""))
    line = Text.assemble(
        "  ",
        (f"{mark} {status:<10}", style),
        " ",
        (step_path(step), "bold"),
    )
    name = step.get("name")
    if name and name != step.get("step_id"):
        line.append(f"  {name}")
    line.append(f"  {duration(step.get('start_time'), step.get('end_time'))}", style="dim")
    if step.get("error"):
        line.append(f"  {step['error']}", style="red")
    return line


def print_table(out: Console, table: Table) -> None:
    """Print a table without cutting its unwrappable columns (ids, links) short.

    When they do not fit the terminal, the rows get their natural width and the terminal
    wraps them, which beats rich's fallback of truncating or dropping columns.
    """
    measured = Measurement.get(out, out.options.update(max_width=10_000), table)
    width = out.width
    if measured.minimum > width:
        out.width = min(measured.maximum, max(measured.minimum, PIPE_WIDTH))
    try:
        out.print(table)
    finally:
        out.width = width


def print_json(out: Console, data: Any) -> None:
    """Pretty JSON: colored on a terminal, plain (pipeable) otherwise."""
    if out.is_terminal:
        out.print(JSON.from_data(data, ensure_ascii=False), soft_wrap=True)
    else:
        out.file.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def execution_error(state: dict[str, Any]) -> str | None:
    """The one-line reason a finished execution did not complete."""
    error = state.get("error")
    if not isinstance(error, dict):
        return None
    where = f" at step '{error['step_id']}'" if error.get("step_id") else ""
    return (
        f"execution {state.get('status', 'failed')}{where}: {error.get('type', 'Error')}: "
        + str(error.get("message", ""))
    )


def summarised_hint(out: Console, state: dict[str, Any]) -> None:
    """Say which outputs are summaries ({"$summary": ...}) and how to see them whole."""
    names = state.get("summarised") or []
    if names:
        out.print(
            f"(summarised, over 4 KiB: {', '.join(map(str, names))}; in full: "
            f"wfe status {state.get('execution_id')} --full)",
            soft_wrap=True,
            style="dim",
        )


def finish(out: Console, state: dict[str, Any], show: bool = True) -> None:
    """Final status, outputs and error of a waited run; exit 1 unless it completed.

    ``show=False`` (--quiet) prints nothing on stdout: the exit status and stderr tell.
    """
    status = str(state.get("status"))
    if show:
        out.print(Text.assemble("status: ", status_text(status)))
    if show and state.get("outputs"):
        out.print("outputs:")
        print_json(out, state["outputs"])
        summarised_hint(out, state)
    if status == "completed":
        return
    error(execution_error(state) or f"execution {status}")
    raise typer.Exit(1)


def follow(
    api: ApiClient,
    out: Console,
    execution_id: str,
    timeout: float | None,
    interval: float,
    show: bool = True,
) -> dict[str, Any]:
    """Poll the execution, printing each step as it finishes (unless not ``show``), until it
    is no longer running."""
    printed: set[Any] = set()
    current: str | None = None
    deadline = None if timeout is None else time.monotonic() + timeout
    spinning = out.status("waiting for the execution to start...") if show else None
    with contextlib.nullcontext() if spinning is None else spinning:
        while True:
            state = api.get(f"/api/executions/{url_path(execution_id)}")
            for step in state.get("steps") or []:
                key = (step.get("seq"), step.get("step_id"))
                if step.get("status") != "running" and key not in printed:
                    printed.add(key)
                    if show:
                        out.print(step_line(step), soft_wrap=True)
            if state.get("status") != "running":
                return dict(state)
            if state.get("current_step") != current:
                current = state.get("current_step")
                done = len(printed)
                if spinning is not None:
                    spinning.update(f"running step [bold]{current}[/bold] ({done} done)")
                if show and current and not out.is_terminal:
                    out.print(f"  … running   {current}", soft_wrap=True)
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise WaitTimeout
            time.sleep(interval if deadline is None else max(min(interval, deadline - now), 0))
