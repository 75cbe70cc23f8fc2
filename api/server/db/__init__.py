"""The control plane's database (docs/database.md): definitions and their versions, API keys
and triggers, in SQLite (embedded default) or PostgreSQL, with Alembic migrations.

:func:`prepare_database` is what the API does before it serves: reach the database (or stop,
naming the URL with its password hidden and the cause), migrate the embedded one or check the
schema version of a configured one, import the files layout of earlier versions once, and
read the stored API keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from activities.runtime.settings import Settings
from activities.runtime.storage.location import FileLocation, parse_storage_url
from api.server.db.engine import UNREACHABLE, cannot_reach, open_engine, run_blocking
from api.server.db.keys import stored_keys
from api.server.db.legacy import import_files_layout
from api.server.db.migrate import check_schema, upgrade
from api.server.db.store import DatabaseDefinitionStore

KEY_FILE = "api-keys.json"

__all__ = ["DatabaseDefinitionStore", "Prepared", "legacy_key_file", "prepare_database"]


@dataclass(frozen=True)
class Prepared:
    keys: list[tuple[bytes, str, str, list[str] | None]]
    imported: str | None


def legacy_key_file(settings: Settings) -> Path:
    """Where `wfe dev` of earlier versions kept its keys: api-keys.json in the storage dir."""
    location = parse_storage_url(settings.storage_url)
    root = location.root if isinstance(location, FileLocation) else Path("storage")
    return Path(root) / KEY_FILE


def prepare_database(settings: Settings) -> Prepared:
    """Blocking (an event loop of its own): called while the API is built."""
    return run_blocking(lambda: _prepare(settings))


async def _prepare(settings: Settings) -> Prepared:
    url = settings.database
    engine = open_engine(url)
    try:
        try:
            if settings.database_embedded:
                await upgrade(engine, url)
            else:
                await check_schema(engine, url)
        except UNREACHABLE as err:
            raise cannot_reach(url, err) from None
        imported = await import_files_layout(
            engine, settings.workflow_definitions_dir, legacy_key_file(settings)
        )
        return Prepared(keys=await stored_keys(engine), imported=imported)
    finally:
        await engine.dispose()
