"""Determinism guard: replay recorded histories against today's interpreter.

Two sources: the histories committed in tests/histories/ (runs recorded by earlier versions:
a change that breaks runs in flight fails here), and every execution this test session ran on
its dev server. Set UPDATE_HISTORIES=<version tag> to add this session's histories to the
committed set (files named <tag>-<definition>.json).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.runtime.settings import load_settings
from activities.runtime.temporal_client import connect_when_ready, data_converter
from tests import parallel
from workflows.interpreter import ENGINE_WORKFLOWS
from workflows.messages import SA_DEFINITION_ID

HISTORIES = Path(__file__).parent / "histories"
# Which execution id each committed history ran under (runs whose code derives ids from their
# own, such as child workflows, replay only under it); histories not listed replay as their
# file name.
IDS = HISTORIES / "_ids.json"
# Runs whose test injected a fault into the interpreter: their histories record what only the
# fault produces, so no faithful replay reproduces them (tests/test_hardening_runs.py).
FAULT_INJECTED = frozenset({"engine-bug"})


async def each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history


# The worker runs the interpreter unsandboxed, the suite's workers sandboxed: replay both ways.
RUNNERS = pytest.mark.parametrize("sandboxed", [False, True], ids=["unsandboxed", "sandboxed"])


def replayer(payload_dir: Path | None = None, sandboxed: bool = False) -> Replayer:
    converter = (
        pydantic_data_converter
        if payload_dir is None
        else data_converter(load_settings(payload_store_dir=payload_dir))
    )
    runner = SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner()
    # debug_mode: no deadlock detection. Replay checks determinism, not speed; on a busy
    # machine a large history's activation can take over the detector's 2 s and fail the
    # replay of a history that replays fine.
    return Replayer(
        workflows=list(ENGINE_WORKFLOWS),
        data_converter=converter,
        workflow_runner=runner,
        debug_mode=True,
    )


@RUNNERS
async def test_committed_histories_replay(sandboxed: bool) -> None:
    files = sorted(f for f in HISTORIES.glob("*.json") if not f.name.startswith("_"))
    assert files, "tests/histories/ is empty: run the suite with UPDATE_HISTORIES=1"
    ids = json.loads(IDS.read_text()) if IDS.exists() else {}
    histories = [WorkflowHistory.from_json(ids.get(f.stem, f.stem), f.read_text()) for f in files]
    assert len(histories) >= 10
    results = await replayer(sandboxed=sandboxed).replay_workflows(
        each(histories), raise_on_replay_failure=False
    )
    failures = {wid: str(err) for wid, err in results.replay_failures.items()}
    assert failures == {}


async def session_histories(client: Client) -> tuple[list[WorkflowHistory], dict[str, str]]:
    """Every closed engine run on the server of ``client``, and the definition of each."""
    names = [getattr(w, "__temporal_workflow_definition").name for w in ENGINE_WORKFLOWS]
    types = ", ".join(f"'{name}'" for name in names)
    closed = f"WorkflowType IN ({types}) AND ExecutionStatus != 'Running'"
    handles = []
    definition_of: dict[str, str] = {}
    async for execution in client.list_workflows(closed):
        definition = execution.typed_search_attributes.get(SA_DEFINITION_ID) or "unknown"
        if definition in FAULT_INJECTED:
            continue
        handles.append(client.get_workflow_handle(execution.id, run_id=execution.run_id))
        definition_of[execution.id] = definition
    fetching = asyncio.Semaphore(8)  # a thousand round trips, a few at a time

    async def fetch(handle: WorkflowHandle[Any, Any]) -> WorkflowHistory:
        async with fetching:
            return await handle.fetch_history()

    return list(await asyncio.gather(*map(fetch, handles))), definition_of


@pytest.mark.last
@pytest.mark.timeout(900)
async def test_every_history_of_this_session_replays(
    client: Client, payload_dir: Path, request: pytest.FixtureRequest
) -> None:
    """Unsandboxed, as the worker runs (the session's runs were made by sandboxed workers, and
    the committed set replays both ways). Under -n, every worker's server, once every other
    test on every worker is done (tests/parallel.py)."""
    sandboxed = False
    await parallel.wait_for_every_other_test(request.session, within=780)
    servers = [(client, payload_dir)]
    for other in parallel.every_server(request.config):
        if other.payload_dir != payload_dir:
            settings = load_settings(
                temporal_address=other.address, payload_store_dir=other.payload_dir
            )
            servers.append((await connect_when_ready(settings), other.payload_dir))
    histories: list[WorkflowHistory] = []
    definition_of: dict[str, str] = {}
    failures: dict[str, str] = {}
    for server_client, payloads in servers:
        found, definitions = await session_histories(server_client)
        histories += found
        definition_of.update(definitions)
        results = await replayer(payloads, sandboxed).replay_workflows(
            each(found), raise_on_replay_failure=False
        )
        failures.update({wid: str(err) for wid, err in results.replay_failures.items()})
    if not histories:
        pytest.skip("run with the rest of the suite: this test replays what the others ran")
    assert failures == {}, f"{len(failures)} of {len(histories)} histories fail to replay"
    tag = os.environ.get("UPDATE_HISTORIES")
    if tag:
        # One small history per definition, named by the interpreter version that made it
        # (UPDATE_HISTORIES=v2 ...), so older versions' histories stay in the set. Histories
        # holding large-value references are left out: their payloads live in this session.
        HISTORIES.mkdir(exist_ok=True)
        ids = json.loads(IDS.read_text()) if IDS.exists() else {}
        for history in histories:
            text = history.to_json()
            if len(text) > 200_000 or "YmluYXJ5L2NsYWltLWNoZWNr" in text:  # binary/claim-check
                continue
            name = definition_of[history.workflow_id]
            prefix = "" if tag == "1" else f"{tag}-"
            (HISTORIES / f"{prefix}{name}.json").write_text(text)
            ids[f"{prefix}{name}"] = history.workflow_id
        IDS.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")
