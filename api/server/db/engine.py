"""Engines for the control plane's database, and the errors of reaching it.

SQLite: one file that several processes may open (WAL journal: readers never wait for the
writer). A write transaction starts with ``BEGIN IMMEDIATE`` (``writer(engine)``), so two
writers queue on the file's lock instead of both reading, then one failing to upgrade its
lock. PostgreSQL: asyncpg, a small pool per process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from activities.runtime.database_url import async_url, shown_url
from workflows.errors import ConfigurationError

T = TypeVar("T")
# Seconds a SQLite writer waits for another's lock, and a PostgreSQL connect may take.
LOCK_WAIT_SECONDS = 30
CONNECT_SECONDS = 10
# What reaching the database raises, mapped to one message (cannot_reach).
UNREACHABLE = (OSError, SQLAlchemyError, asyncio.TimeoutError)


def open_engine(url: str) -> AsyncEngine:
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, connect_args={"timeout": LOCK_WAIT_SECONDS})
        _sqlite_transactions(engine)
        return engine
    return create_async_engine(
        parsed, pool_size=5, max_overflow=10, connect_args={"timeout": CONNECT_SECONDS}
    )


def sqlite_reader(engine: AsyncEngine) -> Engine | None:
    """For SQLite, a synchronous engine on the same file for one-statement reads, run on the
    event loop itself: such a read takes microseconds in-process, while each of the ~10 steps
    of an aiosqlite query is a hop to its thread and back (measured in bench/db.py). In WAL
    mode a reader never waits for a writer, so the loop is not held. None for PostgreSQL."""
    if not is_sqlite(engine):
        return None
    reader = create_engine(
        engine.url.set(drivername="sqlite+pysqlite"),
        connect_args={"timeout": LOCK_WAIT_SECONDS, "check_same_thread": False},
    )

    @event.listens_for(reader, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # each read is its own transaction
        dbapi_connection.execute("PRAGMA query_only=ON")

    return reader


def writer(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) whose transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(write_lock=True)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_transactions(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own BEGIN is always deferred; ours (below) says which kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # each statement is its own transaction
        connection.exec_driver_sql("BEGIN IMMEDIATE" if options.get("write_lock") else "BEGIN")


def cannot_reach(url: str, err: BaseException) -> ConfigurationError:
    """DATABASE_URL cannot be reached: the URL (password hidden) and the driver's cause."""
    cause = getattr(err, "orig", None) or err
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    reason = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return ConfigurationError(f"DATABASE_URL: cannot reach {shown_url(url)}: {reason}")


def run_blocking(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` on an event loop of its own in another thread and wait: for start-up
    steps called from synchronous code that may itself sit inside a running loop."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="database") as pool:
        return pool.submit(lambda: asyncio.run(_awaited(work))).result()


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
