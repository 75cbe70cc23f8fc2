"""API keys kept in the database: only each key's SHA-256 digest, its name, role and scope.

Keys given in API_KEYS or API_KEYS_FILE are configuration and never stored; the database holds
the keys imported from the files layout of earlier versions (``storage/api-keys.json``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from api.server.db.schema import api_keys


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def insert_keys(connection: AsyncConnection, keys: list[dict[str, Any]], source: str) -> None:
    """Store keys by digest; one already stored under the same name is left as it is."""
    stored = set((await connection.scalars(select(api_keys.c.name))).all())
    rows = []
    for key in keys:
        name = str(key.get("name") or "")
        if not name or name in stored:
            continue
        stored.add(name)
        scope = key.get("workflows", "*")
        rows.append(
            {
                "name": name[:100],
                "key_sha256": key_digest(str(key["key"])).hex(),
                "role": str(key.get("role", "viewer"))[:16],
                "workflows": None if scope == "*" else json.dumps(scope),
                "source": source[:200],
                "created_at": datetime.now(UTC),
            }
        )
    if rows:
        await connection.execute(insert(api_keys), rows)


async def stored_keys(engine: AsyncEngine) -> list[tuple[bytes, str, str, list[str] | None]]:
    """(digest, name, role, workflows or None for every workflow) of each stored key."""
    async with engine.connect() as connection:
        rows = (await connection.execute(select(api_keys).order_by(api_keys.c.name))).all()
    return [
        (
            bytes.fromhex(row.key_sha256),
            row.name,
            row.role,
            None if row.workflows is None else list(json.loads(row.workflows)),
        )
        for row in rows
    ]
