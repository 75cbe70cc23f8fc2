"""`wfe db upgrade`: migrate the control plane's database (DATABASE_URL) to this engine's schema."""

from __future__ import annotations

import typer

from activities.runtime.database_url import shown_url
from activities.runtime.settings import Settings, load_settings
from api.cli.app import app, fail
from api.cli.output import stdout
from api.server.db.engine import UNREACHABLE, cannot_reach, open_engine, run_blocking
from api.server.db.migrate import upgrade
from workflows.errors import ConfigurationError

db_app = typer.Typer(help="The control plane's database (DATABASE_URL).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def upgrade_database(settings: Settings) -> tuple[str | None, str]:
    """Migrate; (the schema version before, the version now). ConfigurationError naming the
    URL (password hidden) when it cannot be reached or is newer than this engine."""
    url = settings.database

    async def run() -> tuple[str | None, str]:
        engine = open_engine(url)
        try:
            return await upgrade(engine, url)
        except UNREACHABLE as err:
            raise cannot_reach(url, err) from None
        finally:
            await engine.dispose()

    return run_blocking(run)


@db_app.command("upgrade")
def upgrade_command() -> None:
    """Create or migrate the database DATABASE_URL names (default: SQLite in storage/)."""
    try:
        settings = load_settings()
        before, now = upgrade_database(settings)
    except ConfigurationError as err:
        fail(str(err))
    where = shown_url(settings.database)
    if before == now:
        stdout().print(f"{where}: already at schema version {now}", soft_wrap=True)
    else:
        start = f"schema version {before}" if before else "an empty database"
        stdout().print(f"{where}: upgraded from {start} to {now}", soft_wrap=True)
