"""Definitions as code (docs/database.md): `wfe push DIR`, `wfe pull DIR`, `wfe diff ID V1 V2`.

`push` checks every file before it saves any: one bad file and nothing is saved (exit 1, every
problem printed with its file and JSON path). Then each changed definition becomes a new
version, and each workflow gets one line: ``created``, ``new version N`` or ``unchanged``.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.app import ApiKey, ApiUrl, app, connect, error
from api.cli.client import DEFAULT_API_URL, ApiClient, ApiFailure, ClientError
from api.cli.output import read_document, reporting, stdout, url_path
from api.server.store import content_hash


@dataclass(frozen=True)
class LocalDefinition:
    path: Path
    workflow_id: str
    document: dict[str, Any]

    @property
    def body(self) -> bytes:
        return json.dumps(self.document, ensure_ascii=False).encode()


def definition_files(target: Path) -> list[Path]:
    if target.is_dir():
        files = sorted(p for p in target.glob("*.json") if p.is_file())
        if not files:
            raise ClientError(f"{target}: no *.json files")
        return files
    if not target.exists():
        raise ClientError(f"{target}: no such file or directory")
    return [target]


def read_definitions(files: list[Path]) -> tuple[list[LocalDefinition], list[str]]:
    """Each file's definition (its "id", else its name, as the API saves it), and the
    problems found without asking the API: unreadable files, ids defined twice."""
    found: list[LocalDefinition] = []
    problems: list[str] = []
    owners: dict[str, Path] = {}
    for path in files:
        try:
            _, document = read_document(path)
        except ClientError as err:
            problems.append(str(err))
            continue
        if not isinstance(document, dict):
            problems.append(f"{path}: $: a definition is a JSON object")
            continue
        given = document.get("id")
        named = isinstance(given, str | int) and not isinstance(given, bool)
        workflow_id = str(given) if named else path.stem
        if not named:
            document = {"id": workflow_id, **document}
        if workflow_id in owners:
            problems.append(
                f"{path}: $.id: workflow '{workflow_id}' is also in {owners[workflow_id]}"
            )
            continue
        owners[workflow_id] = path
        found.append(LocalDefinition(path, workflow_id, document))
    return found, problems


def api_problems(api: ApiClient, definitions: list[LocalDefinition]) -> list[str]:
    """What the API's own checks (the save's) say of each definition: ``file: path: message``."""
    problems = []
    for item in definitions:
        answer = api.post_raw("/api/workflows/validate", item.body, warnings=False)
        for problem in answer.get("errors") or [] if not answer.get("valid") else []:
            where = problem.get("path") or "$"
            problems.append(f"{item.path}: {where}: {problem.get('message', 'invalid')}")
    return problems


def _current(api: ApiClient, workflow_id: str) -> dict[str, Any] | None:
    try:
        return dict(api.get(f"/api/workflows/{url_path(workflow_id)}"))
    except ApiFailure as err:
        if err.status == 404:
            return None
        raise


def _outcome(api: ApiClient, item: LocalDefinition, dry_run: bool) -> str:
    """Save one definition (or, dry, say what a save would do): the line's verdict."""
    if dry_run:
        current = _current(api, item.workflow_id)
        if current is None:
            return "created"
        if current.get("hash") == content_hash(item.document):
            return f"unchanged (v{current.get('version')})"
        return f"new version {int(current.get('version') or 0) + 1}"
    status, saved = api.put_raw(f"/api/workflows/{url_path(item.workflow_id)}", item.body)
    if status == 201:
        return "created" if saved.get("version") == 1 else f"created (v{saved.get('version')})"
    if saved.get("changed"):
        return f"new version {saved.get('version')}"
    return f"unchanged (v{saved.get('version')})"


def _prune(api: ApiClient, keep: set[str], dry_run: bool) -> list[str]:
    listed = api.get("/api/workflows").get("workflows") or []
    gone = sorted(str(w["workflow_id"]) for w in listed if str(w["workflow_id"]) not in keep)
    for workflow_id in gone:
        if not dry_run:
            api.request("DELETE", f"/api/workflows/{url_path(workflow_id)}")
    return gone


@app.command()
def push(
    target: Annotated[Path, typer.Argument(help="A directory of *.json definitions, or one file.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and say what would change; save nothing.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Delete the workflows (in the key's scope) not in TARGET."),
    ] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Save a folder of definitions: every file is checked first (one bad file: nothing is
    saved, exit 1); then each changed one becomes a new version."""
    out = stdout()
    with reporting():
        found, problems = read_definitions(definition_files(target))
        with connect(api_url, api_key) as api:
            problems += api_problems(api, found)
            if problems:
                for problem in problems:
                    error(problem)
                error(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}: nothing saved")
                raise typer.Exit(1)
            for item in found:
                out.print(f"{item.workflow_id}: {_outcome(api, item, dry_run)}", soft_wrap=True)
            if prune:
                for workflow_id in _prune(api, {i.workflow_id for i in found}, dry_run):
                    out.print(f"{workflow_id}: deleted", soft_wrap=True)
    if dry_run:
        out.print("dry run: nothing was saved")


@app.command()
def pull(
    directory: Annotated[Path, typer.Argument(help="Where to write <workflow id>.json files.")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Write the latest version of every workflow in the key's scope as DIRECTORY/<id>.json."""
    out = stdout()
    with reporting(), connect(api_url, api_key) as api:
        listed = api.get("/api/workflows").get("workflows") or []
        directory.mkdir(parents=True, exist_ok=True)
        for summary in listed:
            workflow_id = str(summary["workflow_id"])
            current = api.get(f"/api/workflows/{url_path(workflow_id)}")
            path = directory / f"{workflow_id}.json"
            text = json.dumps(current["definition"], indent=2, ensure_ascii=False) + "\n"
            path.write_text(text, encoding="utf-8")
            out.print(f"{workflow_id}: v{current['version']} -> {path}", soft_wrap=True)


@app.command()
def diff(
    workflow_id: Annotated[str, typer.Argument(help="The workflow.")],
    old: Annotated[int, typer.Argument(help="A version number.", min=1)],
    new: Annotated[int, typer.Argument(help="Another version number.", min=1)],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """What changed between two versions of a workflow, as a unified diff of their JSON."""
    out = stdout()
    with reporting(), connect(api_url, api_key) as api:
        path = f"/api/workflows/{url_path(workflow_id)}"
        before = api.get(path, version=old)["definition"]
        after = api.get(path, version=new)["definition"]
    lines = list(
        difflib.unified_diff(
            json.dumps(before, indent=2, sort_keys=True, ensure_ascii=False).splitlines(),
            json.dumps(after, indent=2, sort_keys=True, ensure_ascii=False).splitlines(),
            fromfile=f"{workflow_id} v{old}",
            tofile=f"{workflow_id} v{new}",
            lineterm="",
        )
    )
    if not lines:
        out.print(f"{workflow_id}: v{old} and v{new} are the same")
        return
    for line in lines:
        out.print(line, soft_wrap=True, markup=False, highlight=False)
