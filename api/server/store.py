"""Definition storage: the definitions directory, versioned.

Layout under ``WORKFLOW_DEFINITIONS_DIR``::

    ticket-triage.json                    the current document (hand-editable)
    .versions/ticket-triage/000001.json   {"version", "hash", "saved_at", "document"}

Every change that alters the document makes a new version (a number that only grows, plus a
content hash over the canonical JSON). A hand edit of the current file is noticed on the next
read and recorded as a new version, so every run can be pinned to a version number. Writes go
to a temporary file and are renamed into place, under a per-directory file lock, so concurrent
requests (threads or processes) never interleave.

The store is used through :class:`DefinitionStore`, so a database can replace the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from activities.runtime.files import write_json
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
    def get(self, workflow_id: str, version: int | None = None) -> StoredDefinition: ...

    def list_definitions(self) -> list[StoredDefinition]: ...

    def versions(self, workflow_id: str) -> list[int]: ...

    def save(self, workflow_id: str, document: dict[str, Any]) -> SaveResult: ...

    def delete(self, workflow_id: str) -> None: ...


def content_hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def valid_workflow_id(workflow_id: str) -> bool:
    return 0 < len(workflow_id) <= 64 and set(workflow_id) <= _ID_CHARS


class FileDefinitionStore:
    """DefinitionStore on a directory of JSON files."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._thread_lock = threading.RLock()
        # The current version of each definition as last read, keyed by the files' stamps:
        # a start then costs two stat calls, not a lock, two reads and a full validation.
        self._current: dict[str, tuple[tuple[int, ...], StoredDefinition]] = {}

    # -- reading ----------------------------------------------------------------------------

    def get(self, workflow_id: str, version: int | None = None) -> StoredDefinition:
        self._check_id(workflow_id)
        if version is not None:
            record = self._read_version(workflow_id, version)
            if record is None:
                raise DefinitionNotFound(f"workflow '{workflow_id}' has no version {version}")
            return self._stored(workflow_id, record)
        cached = self._current.get(workflow_id)
        if cached is not None and cached[0] == self._stamp(workflow_id):
            return cached[1]
        with self._locked():
            document = self._read_current(workflow_id)
            if document is None:
                raise DefinitionNotFound(f"no workflow named '{workflow_id}'")
            definition = self._validated(workflow_id, document)
            stored = self._record_if_changed(workflow_id, document, definition)[0]
            self._current[workflow_id] = (self._stamp(workflow_id), stored)
            return stored

    def _stamp(self, workflow_id: str) -> tuple[int, ...]:
        """What changes when the definition file or its versions change (any process)."""
        stamp: list[int] = []
        for path in (self._current_path(workflow_id), self._versions_dir(workflow_id)):
            try:
                stat = path.stat()
            except FileNotFoundError:
                stamp += [0, 0, 0]
            else:
                stamp += [stat.st_ino, stat.st_mtime_ns, stat.st_size]
        return tuple(stamp)

    def list_definitions(self) -> list[StoredDefinition]:
        found: list[StoredDefinition] = []
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("*.json")):
            workflow_id = path.stem
            if not valid_workflow_id(workflow_id):
                continue
            with contextlib.suppress(DefinitionNotFound, DefinitionError):
                found.append(self.get(workflow_id))
        return found

    def versions(self, workflow_id: str) -> list[int]:
        self._check_id(workflow_id)
        folder = self._versions_dir(workflow_id)
        if not folder.is_dir():
            return []
        return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())

    # -- writing ----------------------------------------------------------------------------

    def save(self, workflow_id: str, document: dict[str, Any]) -> SaveResult:
        self._check_id(workflow_id)
        definition = self._validated(workflow_id, document)
        with self._locked():
            existed = self._current_path(workflow_id).exists()
            self._atomic_write(self._current_path(workflow_id), document)
            stored, changed = self._record_if_changed(workflow_id, document, definition)
            return SaveResult(stored=stored, created=not existed, changed=changed)

    def delete(self, workflow_id: str) -> None:
        """Remove the current document; recorded versions stay readable for pinned runs."""
        self._check_id(workflow_id)
        with self._locked():
            try:
                self._current_path(workflow_id).unlink()
            except FileNotFoundError:
                raise DefinitionNotFound(f"no workflow named '{workflow_id}'") from None

    # -- internals --------------------------------------------------------------------------

    def _check_id(self, workflow_id: str) -> None:
        if not valid_workflow_id(workflow_id):
            raise DefinitionNotFound(f"'{workflow_id}' is not a valid workflow id")

    def _current_path(self, workflow_id: str) -> Path:
        return self.directory / f"{workflow_id}.json"

    def _versions_dir(self, workflow_id: str) -> Path:
        return self.directory / ".versions" / workflow_id

    def _read_current(self, workflow_id: str) -> dict[str, Any] | None:
        try:
            text = self._current_path(workflow_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            document = json.loads(text)
        except ValueError as err:
            raise DefinitionError(
                [Problem("$", f"{workflow_id}.json is not valid JSON: {err}")]
            ) from None
        if not isinstance(document, dict):
            raise DefinitionError([Problem("$", f"{workflow_id}.json must hold a JSON object")])
        return document

    def _read_version(self, workflow_id: str, version: int) -> dict[str, Any] | None:
        path = self._versions_dir(workflow_id) / f"{version:06d}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def _validated(self, workflow_id: str, document: dict[str, Any]) -> WorkflowDefinition:
        # The shape and the structure, not the type checks: a definition saved before those
        # existed must stay readable and runnable (saves are type-checked by DefinitionService).
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

    def _record_if_changed(
        self, workflow_id: str, document: dict[str, Any], definition: WorkflowDefinition
    ) -> tuple[StoredDefinition, bool]:
        digest = content_hash(document)
        versions = self.versions(workflow_id)
        if versions:
            latest = self._read_version(workflow_id, versions[-1])
            if latest is not None and latest["hash"] == digest:
                return self._stored(workflow_id, latest, definition), False
        record = {
            "version": (versions[-1] + 1) if versions else 1,
            "hash": digest,
            "saved_at": datetime.now(UTC).isoformat(),
            "document": document,
        }
        path = self._versions_dir(workflow_id) / f"{record['version']:06d}.json"
        self._atomic_write(path, record)
        return self._stored(workflow_id, record, definition), True

    def _stored(
        self,
        workflow_id: str,
        record: dict[str, Any],
        definition: WorkflowDefinition | None = None,
    ) -> StoredDefinition:
        document = record["document"]
        return StoredDefinition(
            workflow_id=workflow_id,
            version=int(record["version"]),
            hash=record["hash"],
            saved_at=datetime.fromisoformat(record["saved_at"]),
            document=document,
            definition=definition or self._validated(workflow_id, document),
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._thread_lock, open(self.directory / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _atomic_write(path: Path, document: dict[str, Any]) -> None:
        write_json(path, document)
