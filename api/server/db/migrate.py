"""Schema versions: Alembic's migrations shipped in ``migrations/``, and the checks the API makes
before it serves (an unmigrated or older database names `wfe db upgrade`; a newer one names
both versions)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.runtime.database_url import shown_url
from api.server.db.engine import writer
from workflows.errors import ConfigurationError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
UPGRADE_COMMAND = "wfe db upgrade"
MIGRATION_LOCK = 0x77666501  # any constant of ours: PostgreSQL's advisory lock for migrations


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


def _newer(url: str, revision: str) -> ConfigurationError:
    return ConfigurationError(
        f"DATABASE_URL: the database at {shown_url(url)} is at schema version {revision}, "
        f"newer than this engine's {head_revision()}: run a newer version of the engine"
    )


async def upgrade(engine: AsyncEngine, url: str) -> tuple[str | None, str]:
    """Migrate to this engine's newest schema; (the version before, the version now).
    One transaction with the write lock, so two processes never migrate at once."""

    def run(connection: Connection) -> str | None:
        if connection.dialect.name == "postgresql":
            # Two upgrades at once: the second waits here, then finds the schema current.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        before = _current(connection)
        if before is not None and not _known(before):
            raise _newer(url, before)
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        return before

    async with writer(engine).begin() as connection:
        before = await connection.run_sync(run)
    return before, head_revision()


async def check_schema(engine: AsyncEngine, url: str) -> None:
    """Serve only a database at this engine's schema version."""
    revision = await current_revision(engine)
    head = head_revision()
    if revision == head:
        return
    where = f"the database at {shown_url(url)}"
    if revision is None:
        raise ConfigurationError(
            f"DATABASE_URL: {where} has no schema yet: run `{UPGRADE_COMMAND}` "
            "(with the same DATABASE_URL) before starting the API"
        )
    if not _known(revision):
        raise _newer(url, revision)
    raise ConfigurationError(
        f"DATABASE_URL: {where} is at schema version {revision}, this engine needs {head}: "
        f"run `{UPGRADE_COMMAND}` (with the same DATABASE_URL) before starting the API"
    )
