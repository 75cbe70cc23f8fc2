"""The files layout of earlier versions, imported into the database once.

Earlier versions kept, under ``WORKFLOW_DEFINITIONS_DIR``::

    ticket-triage.json                    the current document (hand-editable)
    .versions/ticket-triage/000001.json   {"version", "hash", "saved_at", "document"}

and the `wfe dev` API keys in ``storage/api-keys.json``. The first start on a database copies
them in, in one transaction that also records the import (``imports``), so it happens once
even when several processes start together. Documents are copied as they are, not
re-checked: one that today's rules refuse stays refused when a run asks for it, as before.
A current file that differs from its last recorded version (a hand edit) becomes one more
version; a workflow whose file was deleted keeps its versions and is not current.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.server.db.engine import writer
from api.server.db.keys import insert_keys
from api.server.db.schema import imports, workflow_versions, workflows
from api.server.db.store import replace_triggers
from api.server.store import content_hash, valid_workflow_id, validated
from workflows.errors import ConfigurationError, DefinitionError

logger = logging.getLogger(__name__)

IMPORT_NAME = "files"


@dataclass
class LegacyWorkflow:
    workflow_id: str
    records: list[dict[str, Any]] = field(default_factory=list)
    current: int | None = None


def read_definitions(directory: Path, skipped: list[str]) -> list[LegacyWorkflow]:
    """Every workflow of a definitions directory with its versions, oldest first."""
    if not directory.is_dir():
        return []
    ids = {p.stem for p in directory.glob("*.json")}
    versions_root = directory / ".versions"
    if versions_root.is_dir():
        ids |= {p.name for p in versions_root.iterdir() if p.is_dir()}
    found = []
    for workflow_id in sorted(i for i in ids if valid_workflow_id(i)):
        item = LegacyWorkflow(workflow_id)
        for path in sorted((versions_root / workflow_id).glob("*.json")):
            record = _json(path, skipped)
            if _is_record(record, path):
                item.records.append(record)
            elif record is not None:
                skipped.append(f"{path} (not a version record)")
        current_path = directory / f"{workflow_id}.json"
        if current_path.exists():
            document = _json(current_path, skipped)
            if isinstance(document, dict):
                _add_current(item, document, current_path)
        if item.records:
            found.append(item)
    return found


def _is_record(record: Any, path: Path) -> bool:
    """A version file as earlier versions wrote it, numbered as its name says."""
    return (
        isinstance(record, dict)
        and isinstance(record.get("document"), dict)
        and isinstance(record.get("version"), int)
        and path.stem.isdigit()
        and int(path.stem) == record["version"]
    )


def _add_current(item: LegacyWorkflow, document: dict[str, Any], path: Path) -> None:
    digest = content_hash(document)
    if not item.records or item.records[-1].get("hash") != digest:
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        last = int(item.records[-1]["version"]) if item.records else 0
        item.records.append(
            {
                "version": last + 1,
                "hash": digest,
                "saved_at": stamp.isoformat(),
                "document": document,
            }
        )
    item.current = int(item.records[-1]["version"])


def _json(path: Path, skipped: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        skipped.append(f"{path} ({type(err).__name__})")
        return None


def read_key_file(path: Path, skipped: list[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    keys = _json(path, skipped)
    if not isinstance(keys, list):
        return []
    return [k for k in keys if isinstance(k, dict) and isinstance(k.get("key"), str)]


async def import_files_layout(engine: AsyncEngine, definitions: Path, key_file: Path) -> str | None:
    """Import once; what was imported (a sentence), or None if an import was done before
    or there was nothing to import."""
    async with engine.connect() as connection:
        done = await connection.scalar(select(imports.c.name).where(imports.c.name == IMPORT_NAME))
    if done is not None:
        return None
    skipped: list[str] = []
    found = read_definitions(definitions, skipped)
    keys = read_key_file(key_file, skipped)
    summary = _summary(found, keys, definitions, key_file, skipped)
    try:
        async with writer(engine).begin() as connection:
            await connection.execute(
                insert(imports).values(
                    name=IMPORT_NAME, imported_at=datetime.now(UTC), summary=summary
                )
            )
            for item in found:
                await _insert_workflow(connection, item)
            await insert_keys(connection, keys, source=str(key_file))
    except IntegrityError as err:
        async with engine.connect() as connection:
            done = await connection.scalar(
                select(imports.c.name).where(imports.c.name == IMPORT_NAME)
            )
        if done is None:  # not another process's import: the files themselves clash
            raise ConfigurationError(
                f"the files layout in {definitions} cannot be imported: {err.orig}"
            ) from None
        return None  # another process imported first, in its own transaction
    return summary if found or keys or skipped else None


async def _insert_workflow(connection: AsyncConnection, item: LegacyWorkflow) -> None:
    now = datetime.now(UTC)
    latest = max(int(r["version"]) for r in item.records)
    await connection.execute(
        insert(workflows).values(
            workflow_id=item.workflow_id,
            current_version=item.current,
            latest_version=latest,
            updated_at=now,
        )
    )
    rows = [
        {
            "workflow_id": item.workflow_id,
            "version": int(r["version"]),
            "hash": str(r.get("hash") or content_hash(r["document"])),
            "saved_at": _stamp(r.get("saved_at"), now),
            "document": json.dumps(r["document"], ensure_ascii=False, separators=(",", ":")),
        }
        for r in item.records
    ]
    await connection.execute(insert(workflow_versions), rows)
    if item.current is not None:
        document = next(r["document"] for r in item.records if int(r["version"]) == item.current)
        try:
            definition = validated(item.workflow_id, document)
        except DefinitionError:
            definition = None
        await replace_triggers(connection, item.workflow_id, item.current, definition)


def _stamp(value: Any, default: datetime) -> datetime:
    try:
        stamp = datetime.fromisoformat(str(value))
    except ValueError:
        return default
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _summary(
    found: list[LegacyWorkflow],
    keys: list[dict[str, Any]],
    definitions: Path,
    key_file: Path,
    skipped: list[str],
) -> str:
    versions = sum(len(item.records) for item in found)
    parts = [
        f"{len(found)} workflow{'s' if len(found) != 1 else ''} ({versions} version"
        f"{'s' if versions != 1 else ''}) from {definitions}",
        f"{len(keys)} API key{'s' if len(keys) != 1 else ''} from {key_file}",
    ]
    text = "imported " + " and ".join(parts)
    if skipped:
        text += f"; skipped unreadable {', '.join(skipped)}"
    return text
