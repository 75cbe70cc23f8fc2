"""The control plane's database (docs/database.md): SQLite and a real PostgreSQL, migrations,
the one-time import of the files layout, several API processes, concurrent saves, and a crash
in the middle of saves."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from activities.runtime.settings import Settings, load_settings
from api.cli import app as wfe
from api.cli.devstack import DevServer, free_port
from api.server.main import create_app
from api.server.store import content_hash
from tests.conftest import ADMIN_KEY, TEST_KEYS
from tests.postgres import PostgresServer, postgres  # noqa: F401 - the fixture
from workflows.errors import ConfigurationError

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def quick(workflow_id: str, note: str = "") -> dict[str, Any]:
    return {
        "id": workflow_id,
        "description": note,
        "steps": [{"id": "one", "type": "set", "values": {"n": 1}}],
    }


def base_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(
        temporal_address=f"127.0.0.1:{free_port()}",
        storage_url=f"file://{tmp_path / 'storage'}",
        workflow_definitions_dir=tmp_path / "definitions",
        api_keys=json.dumps(TEST_KEYS),
        **overrides,
    )


def api_client(settings: Settings, key: str = ADMIN_KEY) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings))
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers)


# -- bad configuration ----------------------------------------------------------------------


def test_a_database_url_that_cannot_be_parsed_or_reached_stops_the_api(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as bad:
        load_settings(database_url="mysql://admin:hunter2secret@db/x")
    assert "DATABASE_URL" in str(bad.value) and "admin:***@db" in str(bad.value)
    assert "hunter2secret" not in str(bad.value)

    nowhere = f"postgresql://admin:hunter2secret@127.0.0.1:{free_port()}/control"
    with pytest.raises(ConfigurationError) as unreachable:
        create_app(base_settings(tmp_path, database_url=nowhere))
    message = str(unreachable.value)
    assert message.startswith("DATABASE_URL: cannot reach postgresql://admin:***@127.0.0.1:")
    assert "Connect" in message or "refused" in message.lower(), message
    assert "hunter2secret" not in message


def test_the_api_refuses_an_unmigrated_older_or_newer_database(tmp_path: Path) -> None:
    path = tmp_path / "control.db"
    settings = base_settings(tmp_path, database_url=f"sqlite:///{path}")
    with pytest.raises(ConfigurationError, match="has no schema yet: run `wfe db upgrade`"):
        create_app(settings)

    runner = CliRunner()
    env = {"DATABASE_URL": f"sqlite:///{path}"}
    first = runner.invoke(wfe, ["db", "upgrade"], env=env)
    assert first.exit_code == 0, first.output
    assert "upgraded from an empty database to 0001" in first.output
    again = runner.invoke(wfe, ["db", "upgrade"], env=env)
    assert "already at schema version 0001" in again.output
    create_app(settings)  # migrated: it starts

    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '0042'")
    with pytest.raises(ConfigurationError) as newer:
        create_app(settings)
    assert "schema version 0042, newer than this engine's 0001" in str(newer.value)
    refused = runner.invoke(wfe, ["db", "upgrade"], env=env)
    assert refused.exit_code == 1 and "0042" in refused.output


def test_the_tables_match_the_newest_migration(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    from api.server.db.schema import metadata

    path = tmp_path / "fresh.db"
    assert (
        CliRunner()
        .invoke(wfe, ["db", "upgrade"], env={"DATABASE_URL": f"sqlite:///{path}"})
        .exit_code
        == 0
    )
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    engine.dispose()


# -- the files layout of earlier versions ---------------------------------------------------


def write_files_layout(tmp_path: Path, viewer_key: str) -> None:
    """Definitions and keys as an earlier version left them on disk."""
    definitions = tmp_path / "definitions"
    for workflow_id, notes in (("alpha", ["v1", "v2"]), ("gone", ["only"])):
        folder = definitions / ".versions" / workflow_id
        folder.mkdir(parents=True)
        for number, note in enumerate(notes, 1):
            document = quick(workflow_id, note)
            record = {
                "version": number,
                "hash": content_hash(document),
                "saved_at": "2026-01-02T03:04:05+00:00",
                "document": document,
            }
            (folder / f"{number:06d}.json").write_text(json.dumps(record))
    # alpha's current file was edited by hand after v2; gone's file was deleted.
    (definitions / "alpha.json").write_text(json.dumps(quick("alpha", "hand edit")))
    storage = tmp_path / "storage"
    storage.mkdir()
    key = {"key": viewer_key, "name": "old-viewer", "role": "viewer", "workflows": ["alpha"]}
    (storage / "api-keys.json").write_text(json.dumps([key]))


async def test_the_first_start_imports_the_files_layout_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    viewer_key = "old-viewer-key-0123456789"
    write_files_layout(tmp_path, viewer_key)
    settings = base_settings(tmp_path)
    with caplog.at_level(logging.WARNING, logger="api.server.main"):
        async with api_client(settings) as api:
            alpha = (await api.get("/api/workflows/alpha")).json()
            assert alpha["version"] == 3 and alpha["versions"] == [1, 2, 3]
            assert alpha["definition"]["description"] == "hand edit"
            assert (await api.get("/api/workflows/gone")).status_code == 404
            huge = await api.get("/api/workflows/alpha", params={"version": 2**70})
            assert huge.status_code == 404  # past the column's range: no such version, no 500
            kept = await api.get("/api/workflows/gone", params={"version": 1})
            assert kept.status_code == 200 and kept.json()["hash"] == content_hash(
                quick("gone", "only")
            )
    said = [r.getMessage() for r in caplog.records if "imported" in r.getMessage()]
    assert said == [
        "first start on this database: imported 2 workflows (4 versions) from "
        f"{tmp_path / 'definitions'} and 1 API key from {tmp_path / 'storage' / 'api-keys.json'}"
    ]
    # The imported key works (kept hashed: the database never holds the key itself).
    async with api_client(settings, viewer_key) as api:
        listed = (await api.get("/api/workflows")).json()["workflows"]
        assert [w["workflow_id"] for w in listed] == ["alpha"]
    with sqlite3.connect(tmp_path / "storage" / "wfe.db") as db:
        assert viewer_key not in json.dumps(db.execute("SELECT * FROM api_keys").fetchall())
    # Once: a later start, even with new files beside the old ones, imports nothing more.
    (tmp_path / "definitions" / "beta.json").write_text(json.dumps(quick("beta")))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="api.server.main"):
        async with api_client(settings) as api:
            assert (await api.get("/api/workflows/beta")).status_code == 404
    assert not [r for r in caplog.records if "imported" in r.getMessage()]


# -- several API processes on one PostgreSQL ------------------------------------------------


class ApiProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "api.server.main:create_app",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env={**env, "API_PORT": str(self.port)}, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the API exited; see its log"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).json().get("temporal") == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError("the API did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.log.close()


@pytest.fixture
def two_apis(
    postgres: PostgresServer,  # noqa: F811
    temporal_server: DevServer,
    tmp_path: Path,
) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    url = postgres.create_database(f"wfe_{uuid.uuid4().hex[:8]}")
    runner = CliRunner()
    migrated = runner.invoke(wfe, ["db", "upgrade"], env={"DATABASE_URL": url})
    assert migrated.exit_code == 0, migrated.output
    env = {
        **{k: v for k, v in os.environ.items() if k.upper() not in _SETTING_NAMES},
        "DATABASE_URL": url,
        "TEMPORAL_ADDRESS": temporal_server.address,
        "TEMPORAL_TASK_QUEUE": f"db-{uuid.uuid4()}",
        "STORAGE_URL": f"file://{tmp_path}",
        "API_KEYS": json.dumps(TEST_KEYS),
        "API_RATE_LIMIT_PER_MINUTE": "1000000",
        "API_RATE_LIMIT_BURST": "100000",
    }
    apis = (ApiProcess(env, tmp_path / "a.log"), ApiProcess(env, tmp_path / "b.log"))
    try:
        for api in apis:
            api.wait_ready()
        yield apis
    finally:
        for api in apis:
            api.stop()


_SETTING_NAMES = {name.upper() for name in Settings.model_fields}


async def test_two_api_processes_share_one_postgresql(
    two_apis: tuple[ApiProcess, ApiProcess],
) -> None:
    one, two = two_apis
    async with (
        httpx.AsyncClient(base_url=one.url, headers=HEADERS, timeout=30) as a,
        httpx.AsyncClient(base_url=two.url, headers=HEADERS, timeout=30) as b,
    ):
        assert (
            await a.put("/api/workflows/shared", json=quick("shared", "first"))
        ).status_code == 201
        seen = (await b.get("/api/workflows/shared")).json()
        assert seen["version"] == 1 and seen["definition"]["description"] == "first"
        # A save in the other process is seen at once (the cache is per version, not per id).
        assert (await b.put("/api/workflows/shared", json=quick("shared", "second"))).json()[
            "version"
        ] == 2
        assert (await a.get("/api/workflows/shared")).json()["definition"][
            "description"
        ] == "second"

        # Concurrent saves of one workflow through both processes: versions 3..32, no gap,
        # no duplicate.
        saves = [
            (a if i % 2 else b).put("/api/workflows/shared", json=quick("shared", f"edit {i}"))
            for i in range(30)
        ]
        answers = await asyncio.gather(*saves)
        assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
        assert sorted(r.json()["version"] for r in answers) == list(range(3, 33))
        assert (await b.get("/api/workflows/shared")).json()["versions"] == list(range(1, 33))

        # SIGKILL one process in the middle of a burst of saves: every version the other
        # reads is whole (its document matches its hash), numbered 1..N, the last current.
        burst = [
            asyncio.create_task(a.put("/api/workflows/shared", json=quick("shared", f"burst {i}")))
            for i in range(40)
        ]
        await asyncio.sleep(0.3)
        one.process.send_signal(signal.SIGKILL)
        await asyncio.gather(*burst, return_exceptions=True)
        after = (await b.get("/api/workflows/shared")).json()
        versions = after["versions"]
        assert versions == list(range(1, len(versions) + 1)) and after["version"] == versions[-1]
        for version in versions[30:]:
            record = (await b.get("/api/workflows/shared", params={"version": version})).json()
            assert record["hash"] == content_hash(record["definition"])
