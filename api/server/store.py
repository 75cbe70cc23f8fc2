"""Definition storage: what the API asks of it (:class:`DefinitionStore`), and the checks every
store makes.

Every change that alters a document makes a new version (a number that only grows, plus a
content hash over the canonical JSON), so every run can be pinned to a version number. The
store is the control plane's database (api/server/db/store.py, docs/database.md).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from api.server.errors import DefinitionNotFound
from workflows.definition import WorkflowDefinition
from workflows.errors import DefinitionError, Problem
from workflows.validation import check_definition

_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class StoredDefinition:
    workflow_id: str
    version: int
    hash: str
    saved_at: datetime
    document: dict[str, Any]
    definition: WorkflowDefinition


@dataclass(frozen=True)
class SaveResult:
    stored: StoredDefinition
    created: bool  # the workflow did not exist before
    changed: bool  # a new version was written


class DefinitionStore(Protocol):
    async def get(self, workflow_id: str, version: int | None = None) -> StoredDefinition: ...

    async def list_definitions(self) -> list[StoredDefinition]: ...

    async def versions(self, workflow_id: str) -> list[int]: ...

    async def save(self, workflow_id: str, document: dict[str, Any]) -> SaveResult: ...

    async def delete(self, workflow_id: str) -> None:
        """Remove the current version; recorded versions stay readable for pinned runs."""


def content_hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def valid_workflow_id(workflow_id: str) -> bool:
    return 0 < len(workflow_id) <= 64 and set(workflow_id) <= _ID_CHARS


def check_id(workflow_id: str) -> None:
    if not valid_workflow_id(workflow_id):
        raise DefinitionNotFound(f"'{workflow_id}' is not a valid workflow id")


def validated(workflow_id: str, document: dict[str, Any]) -> WorkflowDefinition:
    """The shape and the structure, not the type checks: a definition saved before those
    existed must stay readable and runnable (saves are type-checked by DefinitionService)."""
    definition, problems = check_definition(document, types=False)
    if not problems and definition is not None and definition.key != workflow_id:
        problems = [
            Problem(
                "$.id",
                f"the document's id '{definition.key}' does not match the workflow id "
                f"'{workflow_id}' it is saved under",
            )
        ]
    if problems or definition is None:
        raise DefinitionError(problems)
    return definition
