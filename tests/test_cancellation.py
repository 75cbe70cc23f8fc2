"""Cancellation through the API (signal + Temporal cancel) and through Temporal alone: the
in-flight activity stops, no later step runs, the log is finalised; repeats change nothing."""

from __future__ import annotations

from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from activities.runtime.settings import Settings
from tests.conftest import eventually, outcome, read_log, save_definition, start_definition
from tests.fakes import HttpSink, Reply


def slow_then_more(sink: HttpSink) -> dict[str, Any]:
    return {
        "id": "cancellable",
        "steps": [
            {"id": "slow", "type": "http", "method": "POST", "url": f"{sink.url}/slow",
             "timeout_seconds": 120},
            {"id": "after", "type": "http", "method": "POST", "url": f"{sink.url}/after"},
        ],
    }  # fmt: skip


async def test_api_cancel_stops_the_in_flight_http_call(
    http: httpx.AsyncClient, settings: Settings, client: Client, sink: HttpSink
) -> None:
    sink.script("/slow", Reply(200, "late", delay=60))
    save_definition(settings, slow_then_more(sink))
    started = await http.post("/api/workflows/run", json={"workflow_id": "cancellable"})
    execution_id = started.json()["execution_id"]
    await eventually(lambda: sink.deliveries("/slow"))
    first = await http.post(f"/api/executions/{execution_id}/cancel", json={"reason": "stop"})
    assert first.status_code == 202
    # A second cancel while the first is being carried out is accepted and changes nothing.
    second = await http.post(f"/api/executions/{execution_id}/cancel", json={"reason": "again"})
    assert second.status_code in (202, 409)
    # The activity noticed through its heartbeat and hung up on the slow server.
    await eventually(lambda: sink.disconnects, timeout=15)

    async def cancelled() -> dict[str, Any] | None:
        body = (await http.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] == "cancelled" else None

    state = await eventually(cancelled)
    assert state["error"]["message"] == "stop"  # the first reason wins
    assert sink.deliveries("/after") == []
    handle = client.get_workflow_handle(execution_id)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    log = read_log(settings, execution_id)
    assert log["status"] == "cancelled"
    assert [(s["step_id"], s["status"]) for s in log["steps"]] == [("slow", "cancelled")]
    third = await http.post(f"/api/executions/{execution_id}/cancel")
    assert third.status_code == 409
    assert read_log(settings, execution_id) == log


async def test_temporal_cancel_alone_during_an_http_call(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    sink.script("/slow", Reply(200, "late", delay=60))
    handle = await start_definition(client, settings, slow_then_more(sink))
    await eventually(lambda: sink.deliveries("/slow"))
    await handle.cancel()
    state = await outcome(handle)
    assert state["status"] == "cancelled"
    await eventually(lambda: sink.disconnects, timeout=15)
    assert sink.deliveries("/after") == []
    assert read_log(settings, handle.id)["status"] == "cancelled"
    await handle.cancel()  # a repeated cancel of a closed run is harmless
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED


async def test_temporal_cancel_that_comes_after_the_signal_still_closes_the_run_canceled(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    """The API sends the cancel signal, then Temporal's cancel. On a busy API the run can
    finish stopping before the second call lands: it waits for it, so Temporal says Canceled
    (it used to close at once, and Temporal showed a cancelled run as Failed)."""
    sink.script("/slow", Reply(200, "late", delay=60))
    document = slow_then_more(sink) | {"id": "cancelled-by-signal"}
    handle = await start_definition(client, settings, document)
    await eventually(lambda: sink.deliveries("/slow"))
    await handle.signal("cancel", {"reason": "stop", "requested_by": "ops"})

    async def stopped() -> bool:
        state = await handle.query("status")
        return state["status"] == "cancelled"

    await eventually(stopped)  # the run has stopped, its log is final; Temporal's cancel is late
    assert read_log(settings, handle.id)["status"] == "cancelled"
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.cancel()
    state = await outcome(handle)
    assert (state["status"], state["error"]["message"]) == ("cancelled", "stop")
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert sink.deliveries("/after") == []


async def test_a_cancel_signal_alone_closes_the_run_after_the_grace(
    client: Client, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    """Temporal's cancel never comes (Temporal refused it, or an old client sent only the
    signal): the run closes after 10 s, cancelled in its status and log."""
    sink.script("/slow", Reply(200, "late", delay=60))
    handle = await start_definition(client, settings, slow_then_more(sink))
    await eventually(lambda: sink.deliveries("/slow"))
    await handle.signal("cancel", {"reason": "stop"})
    state = await outcome(handle, timeout=30)
    assert state["status"] == "cancelled"
    assert read_log(settings, handle.id)["status"] == "cancelled"
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
