"""DATABASE_URL: which database holds the control plane, and how it is shown in messages.

Users write the URLs they know (``sqlite:///storage/wfe.db``, ``postgresql://u:p@host/db``);
the API talks to them through SQLAlchemy's asyncio drivers (aiosqlite, asyncpg), so the
driver part of the URL is chosen here. Messages never show a password: every place that
names the URL uses :func:`shown_url`.
"""

from __future__ import annotations

import re
from typing import Any

from activities.runtime.storage.location import FileLocation, parse_storage_url

EMBEDDED_FILE = "wfe.db"
# What a user may write -> the asyncio driver the API uses.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "sqlite+pysqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
}
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def shown_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (also when the URL cannot be parsed)."""
    return _PASSWORD.sub(r"\1***@", url)


def async_url(url: str) -> Any:
    """The SQLAlchemy URL with an asyncio driver; ValueError naming the URL if it is not one
    of SQLite or PostgreSQL or cannot be parsed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "postgres":
        url = "postgresql" + url[len("postgres") :]
        scheme = "postgresql"
    if scheme not in _DRIVERS:
        raise ValueError(
            f"{shown_url(url)} is not a database URL this engine takes: use "
            "sqlite:///path/to/file.db or postgresql://user:password@host:port/database"
        )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as err:
        raise ValueError(f"{shown_url(url)} cannot be parsed: {err}") from None
    if parsed.get_backend_name() == "sqlite" and not parsed.database:
        raise ValueError(f"{shown_url(url)} names no file: use sqlite:///path/to/file.db")
    if parsed.get_backend_name() == "postgresql" and not parsed.database:
        raise ValueError(f"{shown_url(url)} names no database: end it with /<database>")
    return parsed.set(drivername=_DRIVERS[scheme])


def check_database_url(url: str) -> None:
    async_url(url)


def embedded_database_url(storage_url: str) -> str:
    """The default: SQLite in STORAGE_URL's directory (storage/ unless it is S3)."""
    location = parse_storage_url(storage_url)
    root = location.root if isinstance(location, FileLocation) else "storage"
    return f"sqlite+aiosqlite:///{root}/{EMBEDDED_FILE}"
