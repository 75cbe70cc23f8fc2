"""`wfe validate`, `wfe push`, `wfe workflows`: definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from api.cli.app import ApiKey, ApiUrl, app, connect, error
from api.cli.client import (
    DEFAULT_API_URL,
    ApiClient,
    ApiFailure,
    ClientError,
)
from api.cli.output import (
    print_table,
    read_document,
    reporting,
    stdout,
    url_path,
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
        raw, document = read_document(path)
    except ClientError as err:
        error(str(err))
        return False
    workflow_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(workflow_id, str | int) or isinstance(workflow_id, bool):
        workflow_id = path.stem
    try:
        status, saved = api.put_raw(f"/api/workflows/{url_path(str(workflow_id))}", raw)
    except ApiFailure as err:
        if err.status == 401:
            raise
        for problem in err.problems() if err.status == 422 else err.lines():
            error(f"{path}: {problem}")
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
    out = stdout()
    with reporting():
        files = _definition_files(target)
        with connect(api_url, api_key) as api:
            results = [_push_one(api, out, path) for path in files]
    failed = results.count(False)
    if failed:
        error(f"{failed} of {len(files)} definition{'s' if len(files) != 1 else ''} not saved")
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
