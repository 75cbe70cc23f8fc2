"""`wfe`: the engine's command line.

wfe dev                       Temporal dev server (SQLite in storage/) + worker + API
wfe validate FILE             check a definition without saving it
wfe push DIR_OR_FILE          save definitions (a new version when a document changed)
wfe workflows                 list saved definitions
wfe run WORKFLOW_ID           start an execution (--wait follows its steps live, -q: id only)
wfe status EXECUTION_ID       status, current step, steps, outputs, error
wfe cancel EXECUTION_ID       cancel a running execution
wfe signal EXECUTION_ID NAME  deliver a signal (e.g. an approval)
wfe logs EXECUTION_ID         the execution log document
wfe list                      recent executions

Every command but `dev` talks to the API at WFE_API_URL (default http://127.0.0.1:8000)
with the key in WFE_API_KEY, and reports failures as one `error:` line each on stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import typer
from rich import box
from rich.console import Console
from rich.json import JSON
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from api.auth import new_admin_key_file
from api.cli_client import (
    API_KEY_ENV,
    API_URL_ENV,
    DEFAULT_API_URL,
    ApiClient,
    ApiFailure,
    ClientError,
    problem_line,
)
from api.dev import DevServer, check_ports_free
from workflows.errors import ConfigurationError
from workflows.runtime.settings import load_settings

app = typer.Typer(help="Durable JSON workflows on Temporal.", no_args_is_help=True)
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """Durable JSON workflows on Temporal."""


def _fail(message: str) -> NoReturn:
    _error(message)
    raise typer.Exit(1)


@app.command()
def dev(
    storage: Path = typer.Option(Path("storage"), help="Where the SQLite file and logs live."),
    temporal_port: int = typer.Option(7233, help="Temporal frontend (gRPC) port."),
    ui_port: int = typer.Option(8233, help="Temporal Web UI port."),
    api_port: int = typer.Option(8000, help="API port."),
    examples: Path = typer.Option(Path("examples"), help="Seeded into the definitions dir."),
) -> None:
    """Run the embedded stack: Temporal dev server, worker and API, on 127.0.0.1.

    HTTP steps may reach this API (127.0.0.1:<api port>, for the offline example) plus any
    hosts already in HTTP_ALLOWED_HOSTS.
    """
    try:
        check_ports_free(
            {
                "Temporal gRPC frontend (--temporal-port)": temporal_port,
                "Temporal Web UI (--ui-port)": ui_port,
                "API (--api-port)": api_port,
            }
        )
    except ConfigurationError as err:
        _fail(str(err))
    dev_environment(os.environ, storage, temporal_port, ui_port, api_port)
    admin_key = _dev_admin_key(storage)
    try:
        settings = load_settings()
    except ConfigurationError as err:
        _fail(str(err))
    _seed_definitions(examples, settings.workflow_definitions_dir)
    storage.mkdir(parents=True, exist_ok=True)
    server_log = (storage / "temporal-server.log").open("ab")
    server = DevServer(
        db_file=storage / "temporal.db", port=temporal_port, ui_port=ui_port, log=server_log
    )
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        console.print("\n[yellow]stopping API, worker and Temporal...[/yellow]")
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in reversed(children):
            try:
                child.wait(timeout=settings.worker_graceful_shutdown_seconds + 5)
            except subprocess.TimeoutExpired:
                child.kill()
        server.stop()
        server_log.close()
        console.print("[green]stopped.[/green]")

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        console.print(f"starting Temporal dev server (data in {storage / 'temporal.db'})...")
        server.start()
        asyncio.run(server.wait_ready())
        # Each child gets its own process group: Ctrl-C reaches only us, and we stop them
        # in order (API, worker, then the server) so in-flight work is handed back cleanly.
        children.append(subprocess.Popen([sys.executable, "-m", "worker"], start_new_session=True))
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "api.main:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(api_port),
                    "--log-level",
                    "warning",
                ],
                start_new_session=True,
            )
        )
        api = f"http://127.0.0.1:{api_port}"
        _wait_for_api(api, children)
        console.rule("[bold]workflow engine running")
        console.print(f"  API docs      [link]{api}/docs[/link]")
        console.print(f"  Temporal UI   [link]{server.ui_url}[/link]")
        console.print(f"  Temporal gRPC {server.address}")
        console.print(f"  Definitions   {settings.workflow_definitions_dir}/")
        console.print(f"  Logs          {settings.workflow_log_dir}/")
        console.print(f"  HTTP allowed  {settings.http_allowed_hosts}", soft_wrap=True)
        if admin_key is not None:
            console.print(f"  Admin API key {admin_key}", soft_wrap=True)
            console.print("  For curl and wfe:", soft_wrap=True)
            console.print(f"    export WFE_API_KEY={admin_key}", soft_wrap=True)
        if settings.openrouter_api_key is None:
            console.print(
                "  [yellow]OPENROUTER_API_KEY is not set: ai steps will fail until it is[/yellow]"
            )
        console.print("  Ctrl-C stops everything.")
        console.rule()
        sys.stdout.flush()  # the banner (and its key) now, also when stdout is a file or pipe
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    name = "worker" if child is children[0] else "API"
                    console.print(f"[red]the {name} exited ({child.returncode}); stopping[/red]")
                    stop()
                    raise typer.Exit(1)
            if server.process is not None and server.process.poll() is not None:
                console.print("[red]the Temporal dev server exited; stopping[/red]")
                stop()
                raise typer.Exit(1)
            time.sleep(0.5)
    finally:
        stop()


def _wait_for_api(api: str, children: list[subprocess.Popen[bytes]], within: float = 30.0) -> None:
    """Wait until the API answers /healthz (the banner's links then work), or a child exits,
    or ``within`` seconds pass (the banner is printed anyway; the watch loop reports exits)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and all(child.poll() is None for child in children):
        try:
            if httpx.get(f"{api}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)


def dev_allowed_hosts(listed: str | None, api_port: int) -> str:
    """``HTTP_ALLOWED_HOSTS`` for `wfe dev`: this API (``127.0.0.1:<api port>``, which the
    offline example calls) plus whatever the user listed. Appended, not overridden: a user who
    adds a host for their own workflow expects the tour to keep working."""
    own = f"127.0.0.1:{api_port}"
    entries = [item.strip() for item in (listed or "").split(",") if item.strip()]
    return ",".join([own, *(entry for entry in entries if entry != own)])


def dev_environment(
    environ: MutableMapping[str, str],
    storage: Path,
    temporal_port: int,
    ui_port: int,
    api_port: int,
) -> None:
    """What `wfe dev` sets for itself, the worker and the API (their environment is ours).

    A variable the user set wins, except HTTP_ALLOWED_HOSTS, which gets this API added.
    """
    environ.setdefault("TEMPORAL_ADDRESS", f"127.0.0.1:{temporal_port}")
    environ.setdefault("TEMPORAL_UI_URL", f"http://127.0.0.1:{ui_port}")
    environ.setdefault("WORKFLOW_LOG_DIR", str(storage / "workflow_logs"))
    environ.setdefault("API_PORT", str(api_port))
    environ.setdefault("PAYLOAD_STORE_DIR", str(storage / "payloads"))
    environ["HTTP_ALLOWED_HOSTS"] = dev_allowed_hosts(environ.get("HTTP_ALLOWED_HOSTS"), api_port)


def _dev_admin_key(storage: Path) -> str | None:
    """Local dev gets an admin key on first start (storage/api-keys.json), unless keys or
    AUTH_DISABLED are configured; the key is printed so the tour's curl commands work."""
    if any(os.environ.get(v) for v in ("API_KEYS", "API_KEYS_FILE", "AUTH_DISABLED")):
        return None
    path = storage / "api-keys.json"
    if path.exists():
        keys = json.loads(path.read_text(encoding="utf-8"))
        key = next(k["key"] for k in keys if k.get("role") == "admin")
    else:
        key = new_admin_key_file(path)
        console.print(f"created an admin API key in {path}")
    os.environ["API_KEYS_FILE"] = str(path)
    return str(key)


def _seed_definitions(examples: Path, definitions: Path) -> None:
    """Copy example workflows that the definitions directory does not have yet."""
    if not examples.is_dir():
        return
    definitions.mkdir(parents=True, exist_ok=True)
    for path in sorted(examples.glob("*.json")):
        target = definitions / path.name
        if not target.exists():
            shutil.copyfile(path, target)


# -- commands that talk to the API --------------------------------------------------------

ApiUrl = Annotated[
    str,
    typer.Option(
        "--api-url", envvar=API_URL_ENV, show_envvar=True, help="Base URL of the engine's API."
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=API_KEY_ENV,
        show_envvar=True,
        show_default=False,
        help="API key, sent as 'Authorization: Bearer <key>'.",
    ),
]

_STEP_STYLES = {
    "success": ("✓", "green"),
    "failed": ("✗", "red"),
    "cancelled": ("⊘", "yellow"),
    "running": ("…", "cyan"),
}
_RUN_STYLES = {"completed": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}
EXIT_TIMEOUT = 2
PIPE_WIDTH = 200


class WaitTimeout(Exception):
    """``run --wait --timeout`` ran out before the execution finished."""


def _out() -> Console:
    """Console on stdout (made per command, so COLUMNS and redirections apply).

    Piped output is not cut to 80 columns (tables stay one row per line) unless COLUMNS says.
    """
    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    return out


def _error(message: str) -> None:
    """One `error:` line on stderr, never wrapped and never read as markup."""
    console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


def _warning(message: str) -> None:
    """One `warning:` line on stderr (the command still succeeds), like `_error`."""
    console.print(Text.assemble(("warning:", "bold yellow"), " ", message), soft_wrap=True)


@contextlib.contextmanager
def _reporting() -> Iterator[None]:
    """Turn a ClientError into its `error:` lines and exit status 1."""
    try:
        yield
    except ClientError as err:
        for line in err.lines():
            _error(line)
        raise typer.Exit(1) from None


def _path(*parts: str) -> str:
    """Quote ids for a URL path (an id can never reach another route)."""
    return "/".join(quote(part, safe="") for part in parts)


def _read_document(path: Path) -> tuple[bytes, Any]:
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


def _json_argument(value: str, option: str) -> Any:
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


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _when(value: Any) -> str:
    moment = _parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _duration(start: Any, end: Any) -> str:
    first, last = _parse_time(start), _parse_time(end)
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


def _status_text(status: str) -> Text:
    return Text(status, style=_RUN_STYLES.get(status, ""))


def _step_line(step: dict[str, Any]) -> Text:
    """``✓ success  step_id  name  0.12s`` (plus the error of a failed step)."""
    status = str(step.get("status", "?"))
    mark, style = _STEP_STYLES.get(status, ("?", ""))
    line = Text.assemble(
        "  ",
        (f"{mark} {status:<10}", style),
        " ",
        (str(step.get("step_id", "?")), "bold"),
    )
    name = step.get("name")
    if name and name != step.get("step_id"):
        line.append(f"  {name}")
    line.append(f"  {_duration(step.get('start_time'), step.get('end_time'))}", style="dim")
    if step.get("error"):
        line.append(f"  {step['error']}", style="red")
    return line


def _print_table(out: Console, table: Table) -> None:
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


def _print_json(out: Console, data: Any) -> None:
    """Pretty JSON: colored on a terminal, plain (pipeable) otherwise."""
    if out.is_terminal:
        out.print(JSON.from_data(data, ensure_ascii=False), soft_wrap=True)
    else:
        out.file.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _execution_error(state: dict[str, Any]) -> str | None:
    """The one-line reason a finished execution did not complete."""
    error = state.get("error")
    if not isinstance(error, dict):
        return None
    where = f" at step '{error['step_id']}'" if error.get("step_id") else ""
    return (
        f"execution {state.get('status', 'failed')}{where}: {error.get('type', 'Error')}: "
        + str(error.get("message", ""))
    )


def _finish(out: Console, state: dict[str, Any], show: bool = True) -> None:
    """Final status, outputs and error of a waited run; exit 1 unless it completed.

    ``show=False`` (--quiet) prints nothing on stdout: the exit status and stderr tell.
    """
    status = str(state.get("status"))
    if show:
        out.print(Text.assemble("status: ", _status_text(status)))
    if show and state.get("outputs"):
        out.print("outputs:")
        _print_json(out, state["outputs"])
    if status == "completed":
        return
    _error(_execution_error(state) or f"execution {status}")
    raise typer.Exit(1)


def _follow(
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
            state = api.get(f"/api/executions/{_path(execution_id)}")
            for step in state.get("steps") or []:
                key = (step.get("seq"), step.get("step_id"))
                if step.get("status") != "running" and key not in printed:
                    printed.add(key)
                    if show:
                        out.print(_step_line(step), soft_wrap=True)
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


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="A workflow definition (JSON).")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Validate a definition without saving it: 'valid', or one 'path: message' per problem."""
    out = _out()
    with _reporting():
        raw, _ = _read_document(file)
        with ApiClient(api_url, api_key) as api:
            answer = api.post_raw("/api/workflows/validate", raw)
    if answer.get("valid"):
        out.print("valid")
        return
    problems = answer.get("errors") or []
    for item in problems:
        out.print(f"{item.get('path') or '$'}: {item.get('message')}", soft_wrap=True)
    _error(f"{file}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    raise typer.Exit(1)


def _definition_files(target: Path) -> list[Path]:
    if target.is_dir():
        files = sorted(p for p in target.glob("*.json") if p.is_file())
        if not files:
            raise ClientError(f"{target}: no *.json files")
        return files
    if not target.exists():
        raise ClientError(f"{target}: no such file or directory")
    return [target]


def _push_one(api: ApiClient, out: Console, path: Path) -> bool:
    """Save one file; print what happened. False when it was refused."""
    try:
        raw, document = _read_document(path)
    except ClientError as err:
        _error(str(err))
        return False
    workflow_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(workflow_id, str | int) or isinstance(workflow_id, bool):
        workflow_id = path.stem
    try:
        status, saved = api.put_raw(f"/api/workflows/{_path(str(workflow_id))}", raw)
    except ApiFailure as err:
        if err.status == 401:
            raise
        for problem in err.problems() if err.status == 422 else err.lines():
            _error(f"{path}: {problem}")
        return False
    action = "created" if status == 201 else "updated" if saved.get("changed") else "unchanged"
    style = {"created": "green", "updated": "cyan"}.get(action, "dim")
    line = Text.assemble(
        (f"{action:<9}", style), " ", (str(saved["workflow_id"]), "bold"), f"  v{saved['version']}"
    )
    line.append(f"  ({path})", style="dim")
    if saved.get("schedules"):
        line.append(f"  schedules: {', '.join(saved['schedules'])}")
    if saved.get("webhook"):
        line.append(f"  webhook: {saved['webhook']}")
    out.print(line, soft_wrap=True)
    return True


@app.command()
def push(
    target: Annotated[Path, typer.Argument(help="A definition file, or a directory of *.json.")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Save definitions: each file's 'id' (else its name) gets a new version if it changed."""
    out = _out()
    with _reporting():
        files = _definition_files(target)
        with ApiClient(api_url, api_key) as api:
            results = [_push_one(api, out, path) for path in files]
    failed = results.count(False)
    if failed:
        _error(f"{failed} of {len(files)} definition{'s' if len(files) != 1 else ''} not saved")
        raise typer.Exit(1)


@app.command()
def workflows(api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None) -> None:
    """List the saved definitions (latest versions) in the key's scope."""
    out = _out()
    with _reporting(), ApiClient(api_url, api_key) as api:
        answer = api.get("/api/workflows")
    items = answer.get("workflows") or []
    if not items:
        out.print("no workflows")
        return
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("workflow", no_wrap=True, style="bold")
    table.add_column("version", justify="right", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("triggers")
    table.add_column("saved", no_wrap=True)
    table.add_column("name")
    for item in items:
        table.add_row(
            str(item.get("workflow_id")),
            f"v{item.get('version')}",
            str(item.get("steps")),
            ", ".join(item.get("triggers") or []) or "-",
            _when(item.get("saved_at")),
            item.get("name") or "",
        )
    _print_table(out, table)


@app.command()
def run(
    workflow_id: Annotated[str, typer.Argument(help="The saved workflow to start.")],
    input_vars: Annotated[
        str,
        typer.Option(
            "--input", "-i", help="Input variables: a JSON object, or @file.json.", metavar="JSON"
        ),
    ] = "{}",
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Follow the steps live until it ends.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(min=0, help="With --wait: give up after this many seconds (exit 2)."),
    ] = None,
    interval: Annotated[
        float, typer.Option(min=0.05, help="With --wait: seconds between polls.")
    ] = 0.5,
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
    out = _out()
    with _reporting():
        inputs = _json_argument(input_vars, "--input")
        if not isinstance(inputs, dict):
            raise ClientError('--input must be a JSON object, e.g. \'{"name": "Ada"}\'')
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        with ApiClient(api_url, api_key) as api:
            started = api.post(
                "/api/workflows/run",
                {"workflow_id": workflow_id, "input_vars": inputs},
                headers=headers,
            )
            execution_id = str(started["execution_id"])
            if quiet:
                out.print(execution_id, soft_wrap=True)
            else:
                out.print(f"execution_id: {execution_id}", soft_wrap=True)
                out.print(f"run_id: {started.get('run_id')}", soft_wrap=True)
                version = started.get("definition_version")
                if version is not None:
                    out.print(f"workflow: {started.get('workflow_id')} v{version}", soft_wrap=True)
            # A 2xx answer's `errors` are warnings (no_worker: the run would wait silently).
            for item in started.get("errors") or []:
                _warning(problem_line(item) if isinstance(item, dict) else str(item))
            if not wait:
                return
            try:
                state = _follow(api, out, execution_id, timeout, interval, show=not quiet)
            except WaitTimeout:
                _error(
                    f"timed out after {timeout:g}s: execution {execution_id} is still running "
                    f"(see `wfe status {execution_id}`)"
                )
                raise typer.Exit(EXIT_TIMEOUT) from None
            except KeyboardInterrupt:
                _error(f"stopped waiting; execution {execution_id} goes on")
                raise typer.Exit(130) from None
    _finish(out, state, show=not quiet)


def _steps_table(steps: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("step", no_wrap=True, style="bold")
    table.add_column("type", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    table.add_column("name / error")
    for step in steps:
        status = str(step.get("status", "?"))
        mark, style = _STEP_STYLES.get(status, ("?", ""))
        detail = Text(str(step.get("name") or ""))
        if step.get("error"):
            detail = Text(str(step["error"]), style="red")
        table.add_row(
            str(step.get("seq", "")),
            str(step.get("step_id", "?")),
            str(step.get("type", "")),
            Text(f"{mark} {status}", style=style),
            _duration(step.get("start_time"), step.get("end_time")),
            detail,
        )
    return table


@app.command()
def status(
    execution_id: Annotated[str, typer.Argument(help="The execution (Temporal workflow) id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's answer.")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Show an execution: status, current step, the steps so far, outputs and error."""
    out = _out()
    with _reporting(), ApiClient(api_url, api_key) as api:
        state = api.get(f"/api/executions/{_path(execution_id)}")
    if as_json:
        _print_json(out, state)
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(no_wrap=True)
    version = state.get("definition_version")
    grid.add_row("execution", str(state.get("execution_id")))
    grid.add_row("workflow", f"{state.get('workflow_id')}" + (f" v{version}" if version else ""))
    grid.add_row(
        "status",
        Text.assemble(
            _status_text(str(state.get("status"))), f"  ({state.get('temporal_status')})"
        ),
    )
    if state.get("current_step"):
        grid.add_row("current step", str(state["current_step"]))
    grid.add_row("started", _when(state.get("started_at")))
    if state.get("ended_at"):
        took = _duration(state.get("started_at"), state.get("ended_at"))
        grid.add_row("ended", f"{_when(state.get('ended_at'))}  ({took})")
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
    _print_table(out, grid)
    if steps:
        _print_table(out, _steps_table(steps))
    if state.get("status") != "running" and state.get("outputs"):
        out.print("outputs:")
        _print_json(out, state["outputs"])
    reason = _execution_error(state)
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
    out = _out()
    body = {"reason": reason} if reason else None
    with _reporting(), ApiClient(api_url, api_key) as api:
        answer = api.post(f"/api/executions/{_path(execution_id)}/cancel", body)
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
    out = _out()
    with _reporting():
        body = None if payload is None else _json_argument(payload, "--payload")
        raw = b"" if body is None else json.dumps(body).encode()
        with ApiClient(api_url, api_key) as api:
            api.post_raw(f"/api/executions/{_path(execution_id)}/signals/{_path(name)}", raw)
    out.print(f"delivered: {name} to {execution_id}", soft_wrap=True)


@app.command()
def logs(
    execution_id: Annotated[str, typer.Argument(help="The execution whose log to show.")],
    steps: Annotated[bool, typer.Option("--steps", help="A table of the steps instead.")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Print the execution log document (JSON), or with --steps a table of its steps."""
    out = _out()
    with _reporting(), ApiClient(api_url, api_key) as api:
        document = api.get(f"/api/executions/{_path(execution_id)}/log")
    if not steps:
        _print_json(out, document)
        return
    out.print(
        Text.assemble(
            f"{document.get('workflow_id')} ",
            _status_text(str(document.get("status"))),
            f"  {_duration(document.get('start_time'), document.get('end_time'))}",
        )
    )
    _print_table(out, _steps_table(document.get("steps") or []))


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
    out = _out()
    with _reporting(), ApiClient(api_url, api_key) as api:
        found = _collect(api, workflow, status, limit)
    if as_json:
        _print_json(out, found)
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
            _status_text(str(item.get("status"))),
            _when(item.get("started_at")),
            _duration(item.get("started_at"), item.get("ended_at")),
            str(item.get("started_by") or "-"),
        )
    _print_table(out, table)


if __name__ == "__main__":
    app()
