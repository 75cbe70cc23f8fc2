"""DatabaseDefinitionStore: definitions and their versions in the control plane's database.

A version, once written, never changes: the parsed definition of ``(workflow_id, version)``
is cached for as long as the process lives. What the *current* version is can change in any
process, so every read of it asks the database (one indexed row); a save in one API process
is therefore seen by the others at the next read.

A save is one transaction: read the workflow's row (locked on PostgreSQL, the whole file on
SQLite), insert version ``latest + 1``, move the row, replace its triggers. Two saves that
still race on the number both try to insert the same ``(workflow_id, version)`` key; the
primary key refuses the second, which retries with the next number, so versions run 1..N
with no gap and no duplicate. A process killed mid-save leaves the transaction uncommitted:
the old version or the new one, never half of it.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.server.db.engine import sqlite_reader, writer
from api.server.db.schema import triggers, workflow_versions, workflows
from api.server.errors import DefinitionNotFound
from api.server.store import (
    SaveResult,
    StoredDefinition,
    check_id,
    content_hash,
    validated,
)
from workflows.definition import WorkflowDefinition
from workflows.errors import DefinitionError

CACHED_VERSIONS = 1024
MAX_VERSION = 2**31 - 1  # the column is a 32-bit integer on PostgreSQL
_CURRENT_SQL = "SELECT current_version FROM workflows WHERE workflow_id = ?"
SAVE_ATTEMPTS = 20


def _aware(stamp: datetime) -> datetime:
    # SQLite gives back the stamps it was given without their zone; they are all UTC.
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)


def _canonical(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class DatabaseDefinitionStore:
    """DefinitionStore on the control plane's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # Reads of one statement need no transaction: on PostgreSQL that saves the BEGIN and
        # ROLLBACK round trips around each; on SQLite they run in-process (sqlite_reader).
        self._reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._sqlite = sqlite_reader(engine)
        self._versions: OrderedDict[tuple[str, int], StoredDefinition] = OrderedDict()

    # -- reading ----------------------------------------------------------------------------

    async def get(self, workflow_id: str, version: int | None = None) -> StoredDefinition:
        check_id(workflow_id)
        if version is not None and not 0 < version <= MAX_VERSION:
            raise DefinitionNotFound(f"workflow '{workflow_id}' has no version {version}")
        if version is None:
            current = await self._current_version(workflow_id)
            if current is None:
                raise DefinitionNotFound(f"no workflow named '{workflow_id}'")
            version = int(current)
        stored = self._versions.get((workflow_id, version))
        if stored is not None:
            self._versions.move_to_end((workflow_id, version))
            return stored
        rows = await self._rows(
            select(workflow_versions).where(
                workflow_versions.c.workflow_id == workflow_id,
                workflow_versions.c.version == version,
            )
        )
        if not rows:
            raise DefinitionNotFound(f"workflow '{workflow_id}' has no version {version}")
        return self._remember(self._stored(rows[0]._mapping))

    async def list_definitions(self) -> list[StoredDefinition]:
        query = (
            select(workflows.c.workflow_id, workflows.c.current_version)
            .where(workflows.c.current_version.is_not(None))
            .order_by(workflows.c.workflow_id)
        )
        current = await self._rows(query)
        found: list[StoredDefinition] = []
        for row in current:
            try:
                found.append(await self.get(str(row[0]), int(row[1])))
            except (DefinitionNotFound, DefinitionError):
                continue  # a document older rules accepted and these refuse: not listed
        return found

    async def versions(self, workflow_id: str) -> list[int]:
        check_id(workflow_id)
        query = (
            select(workflow_versions.c.version)
            .where(workflow_versions.c.workflow_id == workflow_id)
            .order_by(workflow_versions.c.version)
        )
        return [int(row[0]) for row in await self._rows(query)]

    # -- writing ----------------------------------------------------------------------------

    async def save(self, workflow_id: str, document: dict[str, Any]) -> SaveResult:
        check_id(workflow_id)
        definition = validated(workflow_id, document)
        digest = content_hash(document)
        for attempt in range(SAVE_ATTEMPTS):
            try:
                async with writer(self.engine).begin() as connection:
                    result = await self._save_in(
                        connection, workflow_id, document, definition, digest
                    )
            except (IntegrityError, OperationalError):
                # Another process took this version number (or, on SQLite, held the lock
                # past its wait): the next attempt reads the number it wrote.
                if attempt == SAVE_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.005 * (attempt + 1))
                continue
            stored = result.stored
            fresh = StoredDefinition(**{**stored.__dict__, "definition": definition})
            self._remember(fresh)
            return SaveResult(stored=fresh, created=result.created, changed=result.changed)
        raise AssertionError("unreachable")

    async def _save_in(
        self,
        connection: AsyncConnection,
        workflow_id: str,
        document: dict[str, Any],
        definition: WorkflowDefinition,
        digest: str,
    ) -> SaveResult:
        row = (
            await connection.execute(
                select(workflows.c.current_version, workflows.c.latest_version)
                .where(workflows.c.workflow_id == workflow_id)
                .with_for_update()
            )
        ).first()
        now = datetime.now(UTC)
        created = row is None or row.current_version is None
        if row is None:
            await connection.execute(
                insert(workflows).values(
                    workflow_id=workflow_id, current_version=None, latest_version=0, updated_at=now
                )
            )
            latest = 0
        else:
            latest = int(row.latest_version)
        if latest:
            last = (
                await connection.execute(
                    select(workflow_versions).where(
                        workflow_versions.c.workflow_id == workflow_id,
                        workflow_versions.c.version == latest,
                    )
                )
            ).first()
            if last is not None and last.hash == digest:
                if row is not None and row.current_version != latest:
                    await self._make_current(connection, workflow_id, latest, now, definition)
                return SaveResult(self._stored(last._mapping), created=created, changed=False)
        version = latest + 1
        values = {
            "workflow_id": workflow_id,
            "version": version,
            "hash": digest,
            "saved_at": now,
            "document": _canonical(document),
        }
        await connection.execute(insert(workflow_versions).values(**values))
        await self._make_current(connection, workflow_id, version, now, definition)
        return SaveResult(self._stored(values), created=created, changed=True)

    async def _make_current(
        self,
        connection: AsyncConnection,
        workflow_id: str,
        version: int,
        now: datetime,
        definition: WorkflowDefinition,
    ) -> None:
        await connection.execute(
            update(workflows)
            .where(workflows.c.workflow_id == workflow_id)
            .values(
                current_version=version,
                latest_version=func.max(workflows.c.latest_version, version)
                if connection.dialect.name == "sqlite"
                else func.greatest(workflows.c.latest_version, version),
                updated_at=now,
            )
        )
        await replace_triggers(connection, workflow_id, version, definition)

    async def delete(self, workflow_id: str) -> None:
        """Remove the current version; recorded versions stay readable for pinned runs."""
        check_id(workflow_id)
        async with writer(self.engine).begin() as connection:
            done = await connection.execute(
                update(workflows)
                .where(
                    workflows.c.workflow_id == workflow_id,
                    workflows.c.current_version.is_not(None),
                )
                .values(current_version=None, updated_at=datetime.now(UTC))
            )
            if done.rowcount == 0:
                raise DefinitionNotFound(f"no workflow named '{workflow_id}'")
            await connection.execute(delete(triggers).where(triggers.c.workflow_id == workflow_id))

    # -- internals --------------------------------------------------------------------------

    async def _rows(self, query: Select[Any]) -> list[Any]:
        if self._sqlite is not None:
            with self._sqlite.connect() as connection:
                return list(connection.execute(query).all())
        async with self._reads.connect() as connection:
            return list((await connection.execute(query)).all())

    async def _current_version(self, workflow_id: str) -> int | None:
        """The read every start makes: on SQLite, one statement on a pooled sqlite3
        connection (microseconds; SQLAlchemy's statement machinery would cost ten times it)."""
        if self._sqlite is None:
            found = await self._rows(
                select(workflows.c.current_version).where(workflows.c.workflow_id == workflow_id)
            )
            return None if not found or found[0][0] is None else int(found[0][0])
        connection = self._sqlite.raw_connection()
        try:
            row = connection.execute(_CURRENT_SQL, (workflow_id,)).fetchone()
        finally:
            connection.close()  # back to the pool
        return None if row is None or row[0] is None else int(row[0])

    async def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.dispose()
        await self.engine.dispose()

    def _stored(self, row: Any) -> StoredDefinition:
        document = json.loads(row["document"])
        workflow_id = row["workflow_id"]
        cached = self._versions.get((workflow_id, int(row["version"])))
        definition: WorkflowDefinition = (
            cached.definition if cached is not None else validated(workflow_id, document)
        )
        return StoredDefinition(
            workflow_id=workflow_id,
            version=int(row["version"]),
            hash=row["hash"],
            saved_at=_aware(row["saved_at"]),
            document=document,
            definition=definition,
        )

    def _remember(self, stored: StoredDefinition) -> StoredDefinition:
        self._versions[(stored.workflow_id, stored.version)] = stored
        self._versions.move_to_end((stored.workflow_id, stored.version))
        while len(self._versions) > CACHED_VERSIONS:
            self._versions.popitem(last=False)
        return stored


async def replace_triggers(
    connection: AsyncConnection,
    workflow_id: str,
    version: int,
    definition: WorkflowDefinition | None,
) -> None:
    """The triggers of the version now current, as rows (what fires follows what is current)."""
    await connection.execute(delete(triggers).where(triggers.c.workflow_id == workflow_id))
    if definition is None:
        return
    found: list[tuple[str, Any]] = list(definition.schedules())
    webhook = definition.webhook()
    if webhook is not None:
        found.append(("webhook", webhook))
    rows = [
        {
            "workflow_id": workflow_id,
            "trigger_id": trigger_id,
            "type": trigger.type,
            "version": version,
            "config": trigger.model_dump_json(by_alias=True, exclude_none=True),
        }
        for trigger_id, trigger in found
    ]
    if rows:
        await connection.execute(insert(triggers), rows)
