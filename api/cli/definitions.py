"""`wfe validate`, `wfe workflows`: definitions (`wfe push`, `pull`, `diff`: api/cli/as_code.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from api.cli.app import ApiKey, ApiUrl, app, connect, error
from api.cli.client import (
    DEFAULT_API_URL,
)
from api.cli.output import (
    print_table,
    read_document,
    reporting,
    stdout,
    when,
)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="A workflow definition (JSON).")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Validate a definition without saving it: 'valid', or one 'path: message' per problem."""
    out = stdout()
    with reporting():
        raw, _ = read_document(file)
        with connect(api_url, api_key) as api:
            answer = api.post_raw("/api/workflows/validate", raw, warnings=False)
    if answer.get("valid"):
        out.print("valid")
        return
    problems = answer.get("errors") or []
    for item in problems:
        out.print(f"{item.get('path') or '$'}: {item.get('message')}", soft_wrap=True)
    error(f"{file}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    raise typer.Exit(1)


@app.command()
def workflows(api_url: ApiUrl = DEFAULT_API_URL, api_key: ApiKey = None) -> None:
    """List the saved definitions (latest versions) in the key's scope."""
    out = stdout()
    with reporting(), connect(api_url, api_key) as api:
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
            when(item.get("saved_at")),
            item.get("name") or "",
        )
    print_table(out, table)
