"""`wfe dev`: the embedded stack (Temporal dev server, worker and API) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path

import httpx
import typer

from api.auth import new_admin_key_file
from api.cli.app import app, console, fail
from api.dev import DevServer, check_ports_free
from workflows.errors import ConfigurationError
from workflows.runtime.settings import load_settings
from workflows.runtime.storage import open_stores


@app.command()
def dev(
    storage: Path = typer.Option(Path("storage"), help="Where the SQLite file and logs live."),
    temporal_port: int = typer.Option(7233, help="Temporal frontend (gRPC) port."),
    ui_port: int = typer.Option(8233, help="Temporal Web UI port."),
    api_port: int = typer.Option(8000, help="API port."),
    examples: Path = typer.Option(Path("examples"), help="Seeded into the definitions dir."),
    metrics_port: int = typer.Option(
        9464, help="Worker Prometheus metrics port (0: off; WORKER_METRICS_ADDRESS wins)."
    ),
) -> None:
    """Run the embedded stack: Temporal dev server, worker and API, on 127.0.0.1.

    HTTP steps may reach this API (127.0.0.1:<api port>, for the offline example) plus any
    hosts already in HTTP_ALLOWED_HOSTS.
    """
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
    dev_environment(os.environ, storage, temporal_port, ui_port, api_port, metrics_port)
    admin_key = _dev_admin_key(storage)
    try:
        settings = load_settings()
    except ConfigurationError as err:
        fail(str(err))
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
        console.print(f"  Console       [link]{api}/console[/link]")
        console.print(f"  Temporal UI   [link]{server.ui_url}[/link]")
        console.print(f"  Temporal gRPC {server.address}")
        console.print(f"  Metrics       [link]{api}/metrics[/link] (API)")
        if settings.worker_metrics_address:
            worker_metrics = f"http://{settings.worker_metrics_address}/metrics"
            console.print(f"                [link]{worker_metrics}[/link] (worker)")
        console.print(f"  Definitions   {settings.workflow_definitions_dir}/")
        logs = open_stores(settings).logs.location.rstrip("/")
        console.print(f"  Logs          {logs}/")
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
