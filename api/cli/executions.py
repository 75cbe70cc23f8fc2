"""`wfe run`, `status`, `cancel`, `signal`, `logs`, `list`: executions."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from api.cli.app import ApiKey, ApiUrl, app, connect, error
from api.cli.client import (
    DEFAULT_API_URL,
    ApiClient,
    ClientError,
)
from api.cli.output import (
    EXIT_TIMEOUT,
    STEP_STYLES,
    WaitTimeout,
    duration,
    execution_error,
    finish,
    json_argument,
    print_json,
    print_table,
    reporting,
    status_text,
    stdout,
    step_path,
    summarised_hint,
    tree_order,
    url_path,
    when,
)
from api.cli.watch import follow_live

# Options `run` and `rerun` share: follow the new execution until it ends.
WaitOption = Annotated[
    bool, typer.Option("--wait", "-w", help="Follow the steps live until it ends.")
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(min=0, help="With --wait: give up after this many seconds (exit 2)."),
]
IntervalOption = Annotated[
    float, typer.Option(min=0.05, help="With --wait: seconds between polls.")
]


@app.command()
def run(
    workflow_id: Annotated[str, typer.Argument(help="The saved workflow to start.")],
    input_vars: Annotated[
        str,
        typer.Option(
            "--input", "-i", help="Input variables: a JSON object, or @file.json.", metavar="JSON"
        ),
    ] = "{}",
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
    interval: IntervalOption = 0.5,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Same key and input: the same execution, never a second one."),
    ] = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print only the execution id (with --wait: no progress, no outputs; the exit "
            "status tells how it ended). Warnings and errors still go to stderr.",
        ),
    ] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Start an execution; with --wait, show each step as it finishes and the result.

    Exit status with --wait: 0 completed, 1 failed or cancelled, 2 still running at --timeout.
    Warnings of the start (e.g. no worker polls the task queue) are printed on stderr.
    """
    out = stdout()
    with reporting():
        inputs = json_argument(input_vars, "--input")
        if not isinstance(inputs, dict):
            raise ClientError('--input must be a JSON object, e.g. \'{"name": "Ada"}\'')
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        with connect(api_url, api_key) as api:
            started = api.post(
                "/api/workflows/run",
                {"workflow_id": workflow_id, "input_vars": inputs},
                headers=headers,
            )
            state = _announce_and_follow(api, out, started, wait, timeout, interval, quiet)
    if state is not None:
        finish(out, state, show=not quiet)


def _announce_and_follow(
    api: ApiClient,
    out: Console,
    started: dict[str, Any],
    wait: bool,
    timeout: float | None,
    interval: float,
    quiet: bool,
) -> dict[str, Any] | None:
    """Print a started execution (and its warnings); with ``wait``, follow it to its end."""
    execution_id = str(started["execution_id"])
    if quiet:
        out.print(execution_id, soft_wrap=True)
    else:
        out.print(f"execution_id: {execution_id}", soft_wrap=True)
        out.print(f"run_id: {started.get('run_id')}", soft_wrap=True)
        version = started.get("definition_version")
        if version is not None:
            out.print(f"workflow: {started.get('workflow_id')} v{version}", soft_wrap=True)
        if started.get("rerun_of"):
            out.print(f"rerun_of: {started['rerun_of']}", soft_wrap=True)
    if not wait:
        return None
    try:
        return follow_live(api, out, execution_id, timeout, interval, show=not quiet)
    except WaitTimeout:
        error(
            f"timed out after {timeout:g}s: execution {execution_id} is still running "
            f"(see `wfe status {execution_id}`)"
        )
        raise typer.Exit(EXIT_TIMEOUT) from None
    except KeyboardInterrupt:
        error(f"stopped waiting; execution {execution_id} goes on")
        raise typer.Exit(130) from None


@app.command()
def rerun(
    execution_id: Annotated[str, typer.Argument(help="The finished execution to run again.")],
    from_step: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="A step id or path: it and what follows run fresh (default: the step that "
            "failed or was cancelled); earlier results already paid for are reused.",
        ),
    ] = None,
    input_vars: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            help="New inputs: a JSON object, or @file.json (default: the source's).",
            metavar="JSON",
        ),
    ] = None,
    version: Annotated[
        str, typer.Option(help='"same" (the source\'s version), "latest", or a number.')
    ] = "same",
    wait: WaitOption = False,
    timeout: TimeoutOption = None,
    interval: IntervalOption = 0.5,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the new execution id.")
    ] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Run a finished execution again, reusing the results it already paid for.

    Exit status with --wait: 0 completed, 1 failed or cancelled, 2 still running at --timeout.
    """
    out = stdout()
    with reporting():
        body: dict[str, Any] = {"version": int(version) if version.isdigit() else version}
        if from_step is not None:
            body["from_step"] = from_step
        if input_vars is not None:
            inputs = json_argument(input_vars, "--input")
            if not isinstance(inputs, dict):
                raise ClientError('--input must be a JSON object, e.g. \'{"name": "Ada"}\'')
            body["input_vars"] = inputs
        with connect(api_url, api_key) as api:
            started = api.post(f"/api/executions/{url_path(execution_id)}/rerun", body)
            state = _announce_and_follow(api, out, started, wait, timeout, interval, quiet)
    if state is not None:
        finish(out, state, show=not quiet)


def _steps_table(steps: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("step (path)", no_wrap=True, style="bold")
    table.add_column("type", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    table.add_column("name / error")
    for step in tree_order(steps):
        status = str(step.get("status", "?"))
        mark, style = STEP_STYLES.get(status, ("?", ""))
        detail = Text(str(step.get("name") or ""))
        if step.get("error"):
            detail = Text(str(step["error"]), style="red")
        table.add_row(
            str(step.get("seq", "")),
            step_path(step),
            str(step.get("type", "")),
            Text(f"{mark} {status}", style=style),
            duration(step.get("start_time"), step.get("end_time")),
            detail,
        )
    return table


def waiting_text(state: dict[str, Any]) -> str | None:
    """Why a running run waits: a signal, a concurrency place (and its place in the queue),
    a rate limit."""
    waiting = state.get("waiting_for")
    if not waiting or state.get("status") != "running":
        return None
    if waiting == "concurrency":
        place = state.get("waiting_place")
        key = state.get("concurrency_key")
        return (
            "a concurrency place"
            + (f" (key {key})" if key else "")
            + (f", number {place} in the queue" if place else "")
        )
    if waiting == "rate_limit":
        return "its turn under a rate limit"
    return f"signal {waiting}"


@app.command()
def status(
    execution_id: Annotated[str, typer.Argument(help="The execution (Temporal workflow) id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's answer.")] = False,
    full: Annotated[
        bool,
        typer.Option("--full", help="Values in full (else those over 4 KiB are summarised)."),
    ] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Show an execution: status, current step, the steps so far, outputs and error."""
    out = stdout()
    params = {"include": "variables"} if full else {}
    with reporting(), connect(api_url, api_key) as api:
        state = api.get(f"/api/executions/{url_path(execution_id)}", **params)
    if as_json:
        print_json(out, state)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(no_wrap=True)
    version = state.get("definition_version")
    grid.add_row("execution", str(state.get("execution_id")))
    grid.add_row("workflow", f"{state.get('workflow_id')}" + (f" v{version}" if version else ""))
    grid.add_row(
        "status",
        Text.assemble(status_text(str(state.get("status"))), f"  ({state.get('temporal_status')})"),
    )
    if state.get("current_step"):
        grid.add_row("current step", str(state["current_step"]))
    waiting = waiting_text(state)
    if waiting:
        grid.add_row("waiting for", waiting)
    grid.add_row("started", when(state.get("started_at")))
    if state.get("ended_at"):
        took = duration(state.get("started_at"), state.get("ended_at"))
        grid.add_row("ended", f"{when(state.get('ended_at'))}  ({took})")
    if state.get("started_by"):
        grid.add_row("started by", str(state["started_by"]))
    steps = state.get("steps") or []
    shown = sum(1 for step in steps if step.get("status") != "running")
    done = int(state.get("steps_total") or shown)
    grid.add_row("steps done", str(done) + (f" (the last {shown} shown)" if done > shown else ""))
    if state.get("links", {}).get("temporal_ui"):
        grid.add_row("temporal ui", state["links"]["temporal_ui"])
    if not state.get("live", True):
        grid.add_row("note", "no worker answered: status from Temporal alone")
    print_table(out, grid)
    if steps:
        print_table(out, _steps_table(steps))
    if state.get("status") != "running" and state.get("outputs"):
        out.print("outputs:")
        print_json(out, state["outputs"])
        summarised_hint(out, state)
    reason = execution_error(state)
    if reason:
        out.print(Text(f"error: {reason}", style="red"), soft_wrap=True)


@app.command()
def cancel(
    execution_id: Annotated[str, typer.Argument(help="The execution to cancel.")],
    reason: Annotated[str | None, typer.Option(help="Recorded with the cancellation.")] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Cancel a running execution: its current step stops and its log ends as cancelled."""
    out = stdout()
    body = {"reason": reason} if reason else None
    with reporting(), connect(api_url, api_key) as api:
        answer = api.post(f"/api/executions/{url_path(execution_id)}/cancel", body)
    out.print(f"{answer.get('status', 'cancelling')}: {execution_id}", soft_wrap=True)


@app.command("signal")
def send_signal(
    execution_id: Annotated[str, typer.Argument(help="The execution to signal.")],
    name: Annotated[str, typer.Argument(help="The signal's name, e.g. approval.")],
    payload: Annotated[
        str | None,
        typer.Option(help="The payload: JSON, or @file.json.", metavar="JSON"),
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Deliver a signal (e.g. an approval for a wait_for_signal step)."""
    out = stdout()
    with reporting():
        body = None if payload is None else json_argument(payload, "--payload")
        raw = b"" if body is None else json.dumps(body).encode()
        with connect(api_url, api_key) as api:
            api.post_raw(f"/api/executions/{url_path(execution_id)}/signals/{url_path(name)}", raw)
    out.print(f"delivered: {name} to {execution_id}", soft_wrap=True)


@app.command()
def logs(
    execution_id: Annotated[str, typer.Argument(help="The execution whose log to show.")],
    steps: Annotated[bool, typer.Option("--steps", help="A table of the steps instead.")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Print the execution log document (JSON), or with --steps a table of its steps."""
    out = stdout()
    with reporting(), connect(api_url, api_key) as api:
        document = api.get(f"/api/executions/{url_path(execution_id)}/log")
    if not steps:
        print_json(out, document)
        return
    out.print(
        Text.assemble(
            f"{document.get('workflow_id')} ",
            status_text(str(document.get("status"))),
            f"  {duration(document.get('start_time'), document.get('end_time'))}",
        )
    )
    print_table(out, _steps_table(document.get("steps") or []))


def _collect(
    api: ApiClient, workflow: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` executions, following next_page_token."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while len(found) < limit:
        page = api.get(
            "/api/executions",
            workflow_id=workflow,
            status=status,
            page_size=min(limit - len(found), 500),
            page_token=token,
        )
        found.extend(page.get("executions") or [])
        token = page.get("next_page_token")
        if not token:
            break
    return found[:limit]


@app.command("list")
def list_executions(
    workflow: Annotated[str | None, typer.Option("--workflow", help="Only this workflow.")] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="running, completed, failed or cancelled."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """List executions, newest first."""
    out = stdout()
    with reporting(), connect(api_url, api_key) as api:
        found = _collect(api, workflow, status, limit)
    if as_json:
        print_json(out, found)
        return
    if not found:
        out.print("no executions")
        return
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("execution", no_wrap=True)
    table.add_column("workflow", style="bold")
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    table.add_column("started by")
    for item in found:
        version = item.get("definition_version")
        table.add_row(
            str(item.get("execution_id")),
            f"{item.get('workflow_id') or '-'}" + (f" v{version}" if version else ""),
            status_text(str(item.get("status"))),
            when(item.get("started_at")),
            duration(item.get("started_at"), item.get("ended_at")),
            str(item.get("started_by") or "-"),
        )
    print_table(out, table)


if __name__ == "__main__":
    app()
