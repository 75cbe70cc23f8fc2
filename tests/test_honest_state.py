"""Issue 9 points 1 and 3: every terminal state is told truly, and waiting is visible.

Runs are terminated, timed out and reset with the real `temporal` CLI against the session's
dev server; the log is closed by the real worker process (`python -m worker`), which is the
only thing that runs when Temporal ends a run without our workflow code.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from temporalio.client import Client

from activities.runtime.settings import Settings
from api.cli.devstack import DevServer, temporal_binary
from tests.conftest import eventually, read_log, save_definition
from tests.fakes import HttpSink

WAITS = {
    "id": "waits-approval",
    "steps": [
        {"id": "hello", "type": "set", "values": {"greeting": "hi"}},
        {"id": "approval", "type": "wait_for_signal", "signal": "approval",
         "timeout_seconds": 3600, "output": "approval"},
        {"id": "done", "type": "set", "values": {"by": "{approval.by}"}},
    ],
}  # fmt: skip


@pytest.fixture
def worker_process(settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The real worker, closing logs of runs Temporal ended every second."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "WORKFLOW_LOG_DIR": str(settings.workflow_log_dir),
        "PAYLOAD_STORE_DIR": str(settings.payload_store_dir),
        "HTTP_ALLOWED_HOSTS": "127.0.0.1",
        "LOG_RECONCILE_INTERVAL_SECONDS": "1",
    }
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    yield process
    process.terminate()
    process.wait(20)
    log.close()


async def temporal_cli(server: DevServer, *args: str) -> str:
    command = [temporal_binary(), *args, "--address", server.address, "--namespace", "default"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    assert process.returncode == 0, out.decode()
    return out.decode()


async def status_of(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    answer = await http.get(f"/api/executions/{execution_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def listed(http: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    answer = await http.get("/api/executions", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["executions"])


async def test_terminate_is_told_truly_everywhere(
    http: httpx.AsyncClient,
    settings: Settings,
    temporal_server: DevServer,
    worker_process: Any,
) -> None:
    save_definition(settings, WAITS)
    started = (await http.post("/api/workflows/run", json={"workflow_id": WAITS["id"]})).json()
    execution_id = started["execution_id"]
    await eventually(
        lambda: status_of(http, execution_id), timeout=30
    )  # the worker is up and the run exists
    await eventually(lambda: _is_waiting(http, execution_id), timeout=30)
    await temporal_cli(
        temporal_server, "workflow", "terminate", "--workflow-id", execution_id,
        "--reason", "ops: stuck in a loop",
    )  # fmt: skip
    state = await status_of(http, execution_id)
    assert state["status"] == "terminated"
    assert state["temporal_status"] == "TERMINATED"
    assert state["ended_at"] is not None
    assert state["error"]["type"] == "Terminated"
    assert "ops: stuck in a loop" in state["error"]["message"]
    assert state["current_step"] is None and state["waiting_for"] is None
    assert all(step["status"] != "running" for step in state["steps"])
    # The list: not among the running, found among the terminated.
    running = await eventually(lambda: _ids_listed(http, "running", absent=execution_id), 20)
    assert execution_id not in running
    await eventually(lambda: _ids_listed(http, "terminated", present=execution_id), 20)
    # The log, closed by the worker without anyone asking.
    log = await eventually(lambda: _closed_log(settings, execution_id), timeout=30)
    assert log["status"] == "terminated" and log["end_time"] is not None
    assert "ops: stuck in a loop" in log["error"]["message"]


async def test_a_temporal_run_timeout_is_terminated_with_its_reason(
    http: httpx.AsyncClient, client: Client, settings: Settings, worker_process: Any
) -> None:
    from workflows.messages import WORKFLOW_TYPE
    from workflows.shared import ExecutionInput
    from workflows.validation import load_definition

    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        ExecutionInput(definition=load_definition(WAITS), definition_version=1),
        id=f"timeout-{os.urandom(4).hex()}",
        task_queue=settings.temporal_task_queue,
        execution_timeout=timedelta(seconds=3),
    )
    await eventually(lambda: _is_waiting(http, handle.id), timeout=30)
    state = await eventually(lambda: _terminated(http, handle.id), timeout=30)
    assert state["error"]["type"] == "TimedOut"
    log = await eventually(lambda: _closed_log(settings, handle.id), timeout=30)
    assert log["status"] == "terminated" and log["error"]["type"] == "TimedOut"


async def test_after_a_reset_the_log_keeps_both_runs_and_the_list_shows_one_row(
    http: httpx.AsyncClient,
    settings: Settings,
    temporal_server: DevServer,
    worker_process: Any,
    sink: HttpSink,
) -> None:
    document = {
        "id": "resettable",
        "steps": [
            {"id": "call", "type": "http", "url": f"{sink.url}/call", "output": "called"},
            {"id": "approval", "type": "wait_for_signal", "signal": "approval"},
        ],
    }
    save_definition(settings, document)
    started = (await http.post("/api/workflows/run", json={"workflow_id": "resettable"})).json()
    execution_id, first_run = started["execution_id"], started["run_id"]
    await eventually(lambda: _is_waiting(http, execution_id), timeout=30)
    await temporal_cli(
        temporal_server, "workflow", "reset", "--workflow-id", execution_id,
        "--type", "FirstWorkflowTask", "--reason", "replay from the start",
    )  # fmt: skip
    await eventually(lambda: len(sink.deliveries("/call")) == 2, timeout=30)
    state = await eventually(lambda: _is_waiting(http, execution_id), timeout=30)
    second_run = state["run_id"]
    assert second_run != first_run
    await http.post(f"/api/executions/{execution_id}/signals/approval", json={})
    await eventually(lambda: _status_is(http, execution_id, "completed"), timeout=30)
    log = read_log(settings, execution_id)
    calls = [s for s in log["steps"] if s["step_id"] == "call"]
    assert {s["run_id"] for s in calls} == {first_run, second_run}
    assert log["run_id"] == second_run and log["status"] == "completed"
    rows = [
        r for r in await listed(http, workflow_id="resettable") if r["execution_id"] == execution_id
    ]
    assert len(rows) == 1 and rows[0]["run_id"] == second_run


async def test_waiting_is_visible_and_a_signal_nobody_awaits_is_flagged(
    http: httpx.AsyncClient, settings: Settings, client: Client
) -> None:
    save_definition(settings, WAITS)
    started = (await http.post("/api/workflows/run", json={"workflow_id": WAITS["id"]})).json()
    execution_id = started["execution_id"]
    state = await eventually(lambda: _is_waiting(http, execution_id), timeout=30)
    assert state["waiting_for"] == "approval"
    assert state["waiting_until"] is not None  # timeout_seconds 3600
    wrong = await http.post(f"/api/executions/{execution_id}/signals/aproval", json={})
    assert wrong.status_code == 202
    (warning,) = wrong.json()["errors"]
    assert warning["code"] == "not_waiting" and "waits for 'approval'" in warning["message"]
    right = await http.post(f"/api/executions/{execution_id}/signals/approval", json={"by": "a"})
    assert right.status_code == 202 and right.json()["errors"] == []
    done = await eventually(lambda: _status_is(http, execution_id, "completed"), timeout=30)
    assert done["waiting_for"] is None and done["buffered_signals"] == {"aproval": 1}
    # In the Temporal UI: the wait's timer and the log writes are labelled (user metadata
    # summaries in the history). The run's deadline is further off than the wait's timeout, so
    # it needs no timer of its own (its label is checked in test_engine's deadline tests).
    history = await client.get_workflow_handle(execution_id).fetch_history()
    summaries: dict[str, list[str]] = {
        "EVENT_TYPE_TIMER_STARTED": [],
        "EVENT_TYPE_MARKER_RECORDED": [],
    }
    for event in history.events:
        data = MessageToDict(event)
        summary = data.get("userMetadata", {}).get("summary", {}).get("data")
        if summary:
            summaries.setdefault(data["eventType"], []).append(_decode(summary))
    assert "approval timeout" in summaries["EVENT_TYPE_TIMER_STARTED"]
    assert "execution deadline" not in summaries["EVENT_TYPE_TIMER_STARTED"]
    assert set(summaries["EVENT_TYPE_MARKER_RECORDED"]) >= {"execution log"}


def _decode(data: str) -> str:
    import base64

    return str(json.loads(base64.b64decode(data)))


async def _is_waiting(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any] | None:
    state = await status_of(http, execution_id)
    return state if state.get("waiting_for") else None


async def _status_is(http: httpx.AsyncClient, execution_id: str, status: str) -> Any:
    state = await status_of(http, execution_id)
    return state if state["status"] == status else None


async def _terminated(http: httpx.AsyncClient, execution_id: str) -> Any:
    return await _status_is(http, execution_id, "terminated")


async def _ids_listed(
    http: httpx.AsyncClient, status: str, present: str | None = None, absent: str | None = None
) -> set[str] | None:
    ids = {row["execution_id"] for row in await listed(http, status=status)}
    if present is not None and present not in ids:
        return None
    if absent is not None and absent in ids:
        return None
    return ids or {"(none)"}


def _closed_log(settings: Settings, execution_id: str) -> dict[str, Any] | None:
    try:
        log = read_log(settings, execution_id)
    except FileNotFoundError:
        return None
    return log if log["status"] != "running" else None
