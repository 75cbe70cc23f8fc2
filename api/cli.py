"""`wfe`: the engine's command line.

wfe dev     Temporal dev server (SQLite in storage/) + worker + API, Ctrl-C stops all
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer
from rich.console import Console

from api.dev import DevServer
from workflows.errors import ConfigurationError
from workflows.settings import load_settings

app = typer.Typer(help="Durable JSON workflows on Temporal.", no_args_is_help=True)
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """Durable JSON workflows on Temporal."""


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


@app.command()
def dev(
    storage: Path = typer.Option(Path("storage"), help="Where the SQLite file and logs live."),
    temporal_port: int = typer.Option(7233, help="Temporal frontend (gRPC) port."),
    ui_port: int = typer.Option(8233, help="Temporal Web UI port."),
    api_port: int = typer.Option(8000, help="API port."),
    examples: Path = typer.Option(Path("examples"), help="Seeded into the definitions dir."),
) -> None:
    """Run the embedded stack: Temporal dev server, worker and API, on 127.0.0.1."""
    os.environ.setdefault("TEMPORAL_ADDRESS", f"127.0.0.1:{temporal_port}")
    os.environ.setdefault("TEMPORAL_UI_URL", f"http://127.0.0.1:{ui_port}")
    os.environ.setdefault("WORKFLOW_LOG_DIR", str(storage / "workflow_logs"))
    os.environ.setdefault("API_PORT", str(api_port))
    try:
        settings = load_settings()
    except ConfigurationError as err:
        _fail(str(err))
        return
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
        time.sleep(1.0)
        api = f"http://127.0.0.1:{api_port}"
        console.rule("[bold]workflow engine running")
        console.print(f"  API docs      [link]{api}/docs[/link]")
        console.print(f"  Temporal UI   [link]{server.ui_url}[/link]")
        console.print(f"  Temporal gRPC {server.address}")
        console.print(f"  Definitions   {settings.workflow_definitions_dir}/")
        console.print(f"  Logs          {settings.workflow_log_dir}/")
        if settings.openrouter_api_key is None:
            console.print(
                "  [yellow]OPENROUTER_API_KEY is not set: ai steps will fail until it is[/yellow]"
            )
        console.print("  Ctrl-C stops everything.")
        console.rule()
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    console.print(f"[red]a child process exited ({child.args[1]}); stopping[/red]")
                    stop()
                    raise typer.Exit(1)
            if server.process is not None and server.process.poll() is not None:
                console.print("[red]the Temporal dev server exited; stopping[/red]")
                stop()
                raise typer.Exit(1)
            time.sleep(0.5)
    finally:
        stop()


def _seed_definitions(examples: Path, definitions: Path) -> None:
    """Copy example workflows that the definitions directory does not have yet."""
    if not examples.is_dir():
        return
    definitions.mkdir(parents=True, exist_ok=True)
    for path in sorted(examples.glob("*.json")):
        target = definitions / path.name
        if not target.exists():
            shutil.copyfile(path, target)


if __name__ == "__main__":
    app()
