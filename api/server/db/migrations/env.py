"""Alembic's environment for the control plane's database.

Migrations always run on a connection the caller opened (api/server/db/migrate.py hands it in
``config.attributes["connection"]``), so the same code serves `wfe db upgrade`, `wfe dev` and
the API's embedded database, with the asyncio drivers.
"""

from __future__ import annotations

from alembic import context

from api.server.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
