"""Shared fixtures: one real Temporal dev server per session (one per worker under -n, started
by the controller: tests/parallel.py), a fresh task queue per test, a worker on that queue,
and loopback fakes for OpenRouter and webhook targets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from activities.runtime.settings import Settings, load_settings
from activities.runtime.temporal_client import connect_when_ready
from activities.tls import client_tls_context
from api.cli.devstack import DevServer
from api.server.executions import execution_limits
from tests import parallel
from tests.fakes import FakeOpenRouter, HttpSink
from tests.parallel import is_last
from worker import engine_worker
from workflows.flow.keys import concurrency_claim
from workflows.messages import SA_DEFINITION_ID, WORKFLOW_TYPE
from workflows.shared import ExecutionInput
from workflows.validation import load_definition

OPENROUTER_TEST_KEY = "test-openrouter-key"
ADMIN_KEY = "test-admin-key-0123456789"
TEST_KEYS = [
    {"key": ADMIN_KEY, "name": "test-admin", "role": "admin", "workflows": "*"},
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `first` (a minute or more each) start the session, so that on several
    workers the others run beside them rather than after; tests marked `last` (the replay of
    every recorded history) run after all others."""
    items.sort(
        key=lambda item: 0 if item.get_closest_marker("first") else 2 if is_last(item) else 1
    )
    parallel.remember_last(config, items)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "first: a long test, started before the others")
    config.addinivalue_line("markers", "last: run after every other test")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    parallel.start_servers(config, len(specs))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    parallel.configure_node(node)


def pytest_unconfigure(config: pytest.Config) -> None:
    parallel.stop_servers(config)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    try:
        return (yield)
    finally:  # setup, call and teardown done
        parallel.count_finished(item.config, item.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Figures tests put on their reports (user properties: heading, line), printed once at
    the end, also under -q and from every worker (crash recovery times, tests/test_crashes.py)."""
    figures: dict[str, list[str]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for heading, line in getattr(report, "user_properties", ()):
                figures.setdefault(heading, []).append(str(line))
    for heading, lines in figures.items():
        terminalreporter.write_line("")
        terminalreporter.write_line(f"{heading}:")
        for line in sorted(lines):
            terminalreporter.write_line("  " + line)


@pytest.fixture(scope="session")
def storage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="session")
async def temporal_server(
    storage_dir: Path, request: pytest.FixtureRequest
) -> AsyncIterator[DevServer]:
    given = parallel.own_server(request.config)
    if given is not None:  # under -n: this worker's server, started by the controller
        yield DevServer(port=given.port, headless=True)
        return
    log = (storage_dir / "temporal.log").open("wb")
    try:
        server = DevServer(db_file=storage_dir / "temporal.db", headless=True, log=log)
        async with server.running():
            yield server
    finally:
        log.close()


@pytest.fixture(scope="session")
def payload_dir(storage_dir: Path, request: pytest.FixtureRequest) -> Path:
    """One payload store per server, so the replay test can read every history."""
    given = parallel.own_server(request.config)
    return given.payload_dir if given is not None else storage_dir / "payloads"


@pytest.fixture(scope="session")
async def client(temporal_server: DevServer, payload_dir: Path) -> Client:
    settings = load_settings(
        temporal_address=temporal_server.address, payload_store_dir=payload_dir
    )
    return await connect_when_ready(settings)


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4()}"


@pytest.fixture
def fake_openrouter() -> Iterator[FakeOpenRouter]:
    server = FakeOpenRouter().start()
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    server = HttpSink().start()
    yield server
    server.stop()


@pytest.fixture
def mcp_server() -> Iterator[Any]:
    """An MCP server written with the official SDK, on loopback (tests/mcp_fakes.py)."""
    from tests.mcp_fakes import FakeMCPServer

    server = FakeMCPServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(
    tmp_path: Path,
    temporal_server: DevServer,
    task_queue: str,
    fake_openrouter: FakeOpenRouter,
    payload_dir: Path,
) -> Settings:
    return load_settings(
        temporal_address=temporal_server.address,
        temporal_task_queue=task_queue,
        openrouter_api_key=OPENROUTER_TEST_KEY,
        openrouter_base_url=fake_openrouter.base_url,
        workflow_log_dir=tmp_path / "logs",
        workflow_definitions_dir=tmp_path / "definitions",
        # The embedded control-plane database (SQLite) in the test's own directory.
        storage_url=f"file://{tmp_path}",
        api_keys=json.dumps(TEST_KEYS),
        # Tests talk to loopback fakes: allowed explicitly, the SSRF guard stays on.
        http_allowed_hosts="127.0.0.1",
        payload_store_dir=payload_dir,
        # A webhook trigger must name a secret the API holds, or saving it is refused.
        webhook_secrets=json.dumps({"default": "test-webhook-secret"}),
        # The sandbox guards workflow code in the suite (production runs it unsandboxed).
        worker_workflow_sandbox=True,
        # A stopped or killed worker's runs move to the next within seconds.
        worker_sticky_timeout_seconds=3,
    )


@pytest.fixture
async def worker(client: Client, settings: Settings) -> AsyncIterator[Worker]:
    async with engine_worker(client, settings) as configured, configured:
        yield configured


async def start_definition(
    client: Client,
    settings: Settings,
    document: dict[str, Any],
    input_vars: dict[str, Any] | None = None,
    execution_id: str | None = None,
    max_steps_per_run: int | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start an execution the way the API does, minus HTTP (for engine-level tests)."""
    definition = load_definition(document)
    return await client.start_workflow(
        WORKFLOW_TYPE,
        ExecutionInput(
            definition=definition,
            input_vars=input_vars or {},
            definition_version=1,
            max_steps_per_run=max_steps_per_run,
            limits=execution_limits(definition, settings),
            concurrency=concurrency_claim(definition, input_vars or {}),
        ),
        id=execution_id or str(uuid.uuid4()),
        task_queue=settings.temporal_task_queue,
        search_attributes=_attributes(definition.key),
        static_summary=f"{definition.title} (test)",
    )


def _attributes(key: str) -> TypedSearchAttributes:
    return TypedSearchAttributes([SearchAttributePair(SA_DEFINITION_ID, key)])


@contextlib.asynccontextmanager
async def serve_api(settings: Settings, client: Client) -> AsyncIterator[str]:
    """The real API app served by uvicorn on a loopback port; yields its base URL."""
    import uvicorn

    from api.cli.devstack import free_port
    from api.server.main import create_app

    port = free_port()
    # The API knows its own port, as under `wfe dev` (runs read it as {execution.api_url}).
    app = create_app(settings.model_copy(update={"api_port": port}), client=client)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def api_url(client: Client, settings: Settings, worker: Worker) -> AsyncIterator[str]:
    async with serve_api(settings, client) as url:
        yield url


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[Any]:
    import httpx

    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(
        base_url=api_url, timeout=30, headers=headers, verify=client_tls_context()
    ) as session:
        yield session


_PREPARED_DATABASES: set[str] = set()


def save_definition(settings: Settings, document: dict[str, Any]) -> None:
    """Save a definition straight into the control-plane database the API of ``settings``
    reads (created and migrated first, as the API does), as a save through the API would."""
    from api.server.db.store import DatabaseDefinitionStore

    async def save(store: DatabaseDefinitionStore) -> None:
        await store.save(str(document["id"]), document)

    with_store(settings, save)


def save_raw_definition(settings: Settings, workflow_id: str, document: dict[str, Any]) -> None:
    """Store a document unchecked, as an older version of the engine may have saved it."""
    from datetime import UTC, datetime

    from sqlalchemy import insert

    from api.server.db.schema import workflow_versions, workflows
    from api.server.db.store import DatabaseDefinitionStore
    from api.server.store import content_hash

    async def insert_raw(store: DatabaseDefinitionStore) -> None:
        now = datetime.now(UTC)
        async with store.engine.begin() as connection:
            await connection.execute(
                insert(workflows).values(
                    workflow_id=workflow_id, current_version=1, latest_version=1, updated_at=now
                )
            )
            await connection.execute(
                insert(workflow_versions).values(
                    workflow_id=workflow_id,
                    version=1,
                    hash=content_hash(document),
                    saved_at=now,
                    document=json.dumps(document),
                )
            )

    with_store(settings, insert_raw)


def with_store(settings: Settings, work: Any) -> None:
    """Run ``await work(store)`` on the database of ``settings`` (on a loop of its own)."""
    from api.server.db import prepare_database
    from api.server.db.engine import open_engine, run_blocking
    from api.server.db.store import DatabaseDefinitionStore

    if settings.database not in _PREPARED_DATABASES:
        prepare_database(settings)
        _PREPARED_DATABASES.add(settings.database)

    async def run() -> None:
        engine = open_engine(settings.database)
        try:
            await work(DatabaseDefinitionStore(engine))
        finally:
            await engine.dispose()

    run_blocking(run)


async def outcome(handle: WorkflowHandle[Any, Any], timeout: float = 60) -> dict[str, Any]:
    """The final ExecutionState of a run, whether it completed, failed or was cancelled."""
    from temporalio.client import WorkflowFailureError

    with contextlib.suppress(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), timeout)
    state = await handle.query("status")
    return state if isinstance(state, dict) else state.model_dump(mode="json")


def read_log(settings: Settings, execution_id: str) -> dict[str, Any]:
    return json.loads((settings.workflow_log_dir / f"{execution_id}.json").read_text())


async def runs_on(client: Client, task_queue: str, expected: int | None = None) -> list[str]:
    """The ids of the runs on ``task_queue``, from Temporal's visibility, where a start shows a
    moment after it was made: with ``expected``, read until that many show (up to 20 s)."""

    async def listed() -> list[str]:
        return [w.id async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")]

    if expected is None:
        return await listed()
    ids: list[str] = []

    async def enough() -> bool:
        ids[:] = await listed()
        return len(ids) >= expected

    with contextlib.suppress(AssertionError):  # the caller's assertion names what was found
        await eventually(enough)
    return ids


async def eventually(check: Any, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
