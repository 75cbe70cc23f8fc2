"""`wfe dev`: the embedded stack (Temporal dev server, worker and API) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path

import httpx
import typer

from activities.runtime.database_url import shown_url
from activities.runtime.settings import Settings, load_settings
from activities.runtime.storage import open_stores
from api.cli.app import app, console, fail
from api.cli.client import API_KEY_ENV, API_URL_ENV
from api.cli.devstack import DevServer, check_ports_free, parent_death_signal_available, spawn
from api.server.auth import new_admin_key_file
from api.server.db.engine import open_engine, run_blocking
from api.server.db.store import DatabaseDefinitionStore
from workflows.errors import ConfigurationError, EngineError


@app.command()
def dev(
    storage: Path = typer.Option(Path("storage"), help="Where the SQLite file and logs live."),
    temporal_port: int = typer.Option(7233, help="Temporal frontend (gRPC) port."),
    ui_port: int = typer.Option(8233, help="Temporal Web UI port."),
    api_port: int = typer.Option(8000, help="API port."),
    examples: Path = typer.Option(Path("examples"), help="Saved into the database when missing."),
    metrics_port: int = typer.Option(
        9464, help="Worker Prometheus metrics port (0: off; WORKER_METRICS_ADDRESS wins)."
    ),
) -> None:
    """Run the embedded stack: Temporal dev server, worker and API, on 127.0.0.1.

    Ports are flags (from make: make dev ARGS='--api-port 18000 --temporal-port 17233').
    The banner's two export lines (WFE_API_URL, WFE_API_KEY) point wfe and curl at this API,
    whatever its port.

    Ctrl-C, SIGTERM or a closing terminal (SIGHUP) stop the API, the worker and the server,
    in that order; if wfe dev is killed outright, they end with it.

    HTTP steps may reach this API (127.0.0.1:<api port>, for the offline example) plus any
    hosts already in HTTP_ALLOWED_HOSTS.
    """
    _check_dev_ports(temporal_port, ui_port, api_port, metrics_port)
    dev_environment(os.environ, storage, temporal_port, ui_port, api_port, metrics_port)
    admin_key = _dev_admin_key(storage)
    try:
        settings = load_settings()
    except ConfigurationError as err:
        fail(str(err))
    storage.mkdir(parents=True, exist_ok=True)
    _prepare_database(settings)
    _seed_definitions(examples, settings)
    server_log = storage / "temporal-server.log"
    with server_log.open("ab") as log:
        server = DevServer(
            db_file=storage / "temporal.db", port=temporal_port, ui_port=ui_port, log=log
        )
        # The worker gets its graceful shutdown, plus a margin to exit, before it is killed.
        stack = DevStack(
            server, api_port, server_log, grace=settings.worker_graceful_shutdown_seconds + 5
        )
        code = stack.run(lambda: _print_banner(stack, settings, admin_key))
    if code:
        raise typer.Exit(code)


def _check_dev_ports(temporal_port: int, ui_port: int, api_port: int, metrics_port: int) -> None:
    """Refuse to start (exit 1, naming the flag) when a port is taken or named twice."""
    ports = {
        "Temporal gRPC frontend (--temporal-port)": temporal_port,
        "Temporal Web UI (--ui-port)": ui_port,
        "API (--api-port)": api_port,
    }
    if metrics_port and not os.environ.get("WORKER_METRICS_ADDRESS"):
        ports["worker metrics (--metrics-port)"] = metrics_port
    try:
        check_ports_free(ports)
    except ConfigurationError as err:
        fail(str(err))


# Ctrl-C, `kill`, and the SIGHUP a closing terminal sends its foreground process group.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _StopRequested(EngineError):
    """One of STOP_SIGNALS arrived: unwind whatever `wfe dev` is doing to the orderly stop."""


class DevStack:
    """The Temporal dev server, the worker and the API of one `wfe dev`.

    Each runs in its own session (api.cli.devstack.spawn): Ctrl-C and a closing terminal reach only
    `wfe dev`, which stops them in order - the API, the worker (it hands in-flight work back
    to Temporal), then the server. Should `wfe dev` die without that stop (SIGKILL, a crash),
    the kernel kills them too on Linux (devstack.die_with_parent); elsewhere the worker and the
    API watch for it themselves (api.cli.dev_child).
    """

    def __init__(self, server: DevServer, api_port: int, server_log: Path, grace: float) -> None:
        self.server = server
        self.server_log = server_log
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.api_port = api_port
        self.grace = grace
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    def run(self, banner: Callable[[], None]) -> int:
        """Start, call ``banner``, watch; stop in order. The exit code: 0 when a signal
        asked us to stop, 1 when something failed to start or exited on its own."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            if not self.start():
                return 1
            banner()
            return self.watch()
        except _StopRequested:
            return 0
        finally:
            self.stopping = True
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: object) -> None:
        # Raised, not flagged: a signal during the start (waiting for Temporal or the API)
        # ends the wait at once. Signals during the stop are ignored: it finishes in order.
        if self.stopping:
            return
        self.stopping = True
        raise _StopRequested(signal.Signals(signum).name)

    def start(self) -> bool:
        """The server, then the worker and the API; True once the API answers (or its wait
        ran out: the watch then reports an exit), False if the server did not start."""
        say(f"starting Temporal dev server (data in {self.server.db_file})...")
        self.server.start()
        try:
            asyncio.run(self.server.wait_ready())
        except (RuntimeError, TimeoutError) as err:
            say(f"[red]{err}; its output is in {self.server_log}[/red]")
            return False
        self.children["worker"] = spawn(_python_module("worker"))
        self.children["API"] = spawn(
            _python_module(
                "uvicorn", "--factory", "api.server.main:create_app", "--host", "127.0.0.1",
                "--port", str(self.api_port), "--log-level", "warning",
            )
        )  # fmt: skip
        _wait_for_api(self.api_url, list(self.children.values()))
        return True

    def watch(self) -> int:
        """Until the server, the worker or the API exits on its own (then 1); a stop signal
        interrupts it."""
        processes = {"Temporal dev server": self.server.process, **self.children}
        while True:
            for name, process in processes.items():
                if process is not None and process.poll() is not None:
                    say(f"[red]the {name} exited ({process.returncode}); stopping[/red]")
                    return 1
            time.sleep(0.5)

    def stop(self) -> None:
        """The API and the worker (SIGTERM, killed after ``grace`` seconds), then the server."""
        say("\n[yellow]stopping API, worker and Temporal...[/yellow]")
        running = [child for child in reversed(self.children.values()) if child.poll() is None]
        for child in running:
            child.send_signal(signal.SIGTERM)
        for child in running:
            try:
                child.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.server.stop()
        say("[green]stopped.[/green]")


def _python_module(module: str, *args: str) -> list[str]:
    """``python -m module args``; where the kernel cannot end it with us (not Linux), under
    api.cli.dev_child, which watches for our end instead."""
    if parent_death_signal_available():
        return [sys.executable, "-m", module, *args]
    return [sys.executable, "-m", "api.cli.dev_child", str(os.getpid()), module, *args]


def say(message: str) -> None:
    """Print to our terminal, if there still is one: once it has closed (SIGHUP) writes fail,
    and the orderly stop must go on without its messages."""
    with contextlib.suppress(OSError):
        console.print(message, soft_wrap=True)
        sys.stderr.flush()


def _print_banner(stack: DevStack, settings: Settings, admin_key: str | None) -> None:
    api = stack.api_url
    console.rule("[bold]workflow engine running")
    console.print(f"  API docs      [link]{api}/docs[/link]")
    console.print(f"  Console       [link]{api}/console[/link]")
    console.print(f"  Temporal UI   [link]{stack.server.ui_url}[/link]")
    console.print(f"  Temporal gRPC {stack.server.address}")
    console.print(f"  Metrics       [link]{api}/metrics[/link] (API; with the admin key)")
    if settings.worker_metrics_address:
        worker_metrics = f"http://{settings.worker_metrics_address}/metrics"
        console.print(f"                [link]{worker_metrics}[/link] (worker)")
    database = shown_url(settings.database).replace("sqlite+aiosqlite://", "sqlite://")
    console.print(f"  Definitions   {database}", soft_wrap=True)
    logs = open_stores(settings).logs.location.rstrip("/")
    console.print(f"  Logs          {logs}/")
    console.print(f"  HTTP allowed  {settings.http_allowed_hosts}", soft_wrap=True)
    if admin_key is not None:
        console.print(f"  Admin API key {admin_key}", soft_wrap=True)
    # Both lines every time, whatever the ports: pasted into a shell, `wfe` and the README's
    # curl commands reach this API.
    console.print("  For wfe and curl, in your shell:")
    console.print(f"    export {API_URL_ENV}={api}", soft_wrap=True, highlight=False)
    console.print(f"    {_api_key_line(settings, admin_key)}", soft_wrap=True, highlight=False)
    if settings.openrouter_api_key is None:
        console.print(
            "  [yellow]OPENROUTER_API_KEY is not set: ai steps will fail until it is[/yellow]"
        )
    console.print("  Ctrl-C stops everything.")
    console.rule()
    sys.stderr.flush()  # the banner (and its key) now, also when stderr is a file or pipe


def _api_key_line(settings: Settings, admin_key: str | None) -> str:
    """The WFE_API_KEY line: the dev admin key, else a shell comment saying which key to use."""
    if admin_key is not None:
        return f"export {API_KEY_ENV}={admin_key}"
    if settings.auth_disabled:
        return f"# AUTH_DISABLED is set: no {API_KEY_ENV} needed"
    sources = [name for name in ("API_KEYS", "API_KEYS_FILE") if os.environ.get(name)]
    where = " or ".join(sources or ["API_KEYS", "API_KEYS_FILE"])
    return f"# export {API_KEY_ENV}=<one of the keys in {where}>"


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
    metrics_port: int = 0,
) -> None:
    """What `wfe dev` sets for itself, the worker and the API (their environment is ours).

    A variable the user set wins, except HTTP_ALLOWED_HOSTS, which gets this API added. With
    ``metrics_port``, the worker serves Prometheus metrics on 127.0.0.1 at that port.
    """
    environ.setdefault("TEMPORAL_ADDRESS", f"127.0.0.1:{temporal_port}")
    environ.setdefault("TEMPORAL_UI_URL", f"http://127.0.0.1:{ui_port}")
    environ.setdefault("WORKFLOW_LOG_DIR", str(storage / "workflow_logs"))
    environ.setdefault("API_PORT", str(api_port))
    environ.setdefault("PAYLOAD_STORE_DIR", str(storage / "payloads"))
    if metrics_port:
        environ.setdefault("WORKER_METRICS_ADDRESS", f"127.0.0.1:{metrics_port}")
    environ["HTTP_ALLOWED_HOSTS"] = dev_allowed_hosts(environ.get("HTTP_ALLOWED_HOSTS"), api_port)


def _dev_admin_key(storage: Path) -> str | None:
    """Local dev gets an admin key on first start (storage/api-keys.json), unless keys or
    AUTH_DISABLED are configured; the key is printed so the tour's curl commands work. Later
    starts print the same key; None if someone removed it from the file."""
    auth_off = os.environ.get("AUTH_DISABLED", "").strip().lower() in ("1", "true", "yes", "on")
    if auth_off or any(os.environ.get(v) for v in ("API_KEYS", "API_KEYS_FILE")):
        return None
    path = storage / "api-keys.json"
    if path.exists():
        keys = json.loads(path.read_text(encoding="utf-8"))
        key = next((k["key"] for k in keys if k.get("role") == "admin"), None)
    else:
        key = new_admin_key_file(path)
        console.print(f"created an admin API key in {path}")
    os.environ["API_KEYS_FILE"] = str(path)
    return None if key is None else str(key)


def _prepare_database(settings: Settings) -> None:
    """`wfe db upgrade` for the control plane's database, then what the API does first (the
    one-time import of an earlier version's files), so the examples land after it."""
    from api.cli.database import upgrade_database
    from api.server.db import prepare_database

    try:
        before, now = upgrade_database(settings)
        imported = prepare_database(settings).imported
    except ConfigurationError as err:
        fail(str(err))
    if before != now:
        say(f"database {shown_url(settings.database)}: schema {before or 'created'} -> {now}")
    if imported:
        say(imported)


def _seed_definitions(examples: Path, settings: Settings) -> None:
    """Save the example workflows the database does not have yet (never over a user's own)."""
    if not examples.is_dir():
        return
    documents = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(examples.glob("*.json"))]

    async def seed() -> None:
        engine = open_engine(settings.database)
        store = DatabaseDefinitionStore(engine)
        try:
            for document in documents:
                workflow_id = str(document.get("id"))
                if not await store.versions(workflow_id):
                    await store.save(workflow_id, document)
        finally:
            await engine.dispose()

    run_blocking(seed)


# -- commands that talk to the API --------------------------------------------------------
