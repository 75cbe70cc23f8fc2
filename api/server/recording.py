"""A test case from a finished run (`wfe test --record`, docs/testing.md).

The run's Temporal history holds everything the case needs, as a rerun reads it
(api/server/rerun.py): the inputs it started with, every activity's request (which names the
step's path and visit) and result, the children it ran and their outputs, and the signals it
received (with when). The case mocks each call by the path it ran at (an agent's turns by the
agent, its tool calls by `agent.tool`, its MCP servers' tool lists by `agent.docs`), in visit
order, and expects what the run ended with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from api.server.errors import ApiError
from workflows.messages import (
    BUDGET_SIGNAL,
    CALL_LLM,
    CALL_MCP_TOOL,
    CANCEL_SIGNAL,
    LIST_MCP_TOOLS,
    SEND_HTTP_REQUEST,
    STATUS_QUERY,
    WORKFLOW_TYPE,
    AIRequest,
    AIResult,
    ExecutionState,
    HTTPRequest,
    HTTPResult,
    MCPCallRequest,
    MCPCallResult,
    MCPListRequest,
    MCPToolList,
)
from workflows.mocking import TOOL_CALL
from workflows.shared import ExecutionInput

CALLS = {
    CALL_LLM: (AIRequest, AIResult),
    SEND_HTTP_REQUEST: (HTTPRequest, HTTPResult),
    CALL_MCP_TOOL: (MCPCallRequest, MCPCallResult),
    LIST_MCP_TOOLS: (MCPListRequest, MCPToolList),
}
TURN = re.compile(r"\.turn\[\d+\]$")  # an agent's model turn: `<agent>.turn[<n>]`
ENGINE_SIGNALS = frozenset({CANCEL_SIGNAL, BUDGET_SIGNAL})
MAX_RUNS = 1_000  # continue-as-new links followed at most


def mock_key(activity: str, path: str) -> str:
    """The key a call is mocked by: an agent's turns by the agent, its tools by
    `agent.tool` (an MCP tool: `agent.docs__search`), any other call by its own path (an
    agent's MCP tool list: `agent.docs`)."""
    if activity == CALL_LLM and TURN.search(path):
        return TURN.sub("", path)
    tool = TOOL_CALL.search(path) if activity in (SEND_HTTP_REQUEST, CALL_MCP_TOOL) else None
    if tool is not None:
        return f"{TOOL_CALL.sub('', path)}.{tool.group(1)}"
    return path


@dataclass
class _Recorder:
    client: Client
    input: ExecutionInput | None = None
    started: datetime | None = None
    answers: dict[str, list[Any]] = field(default_factory=dict)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)
    signals: list[dict[str, Any]] = field(default_factory=list)

    async def _decode(self, payloads: Payloads, kind: type[Any]) -> Any:
        values = await self.client.data_converter.decode(list(payloads.payloads), [kind])
        return values[0] if values else None

    async def run(self, events: list[HistoryEvent]) -> str | None:
        """Read one run of the chain; the run it continued as, if any."""
        scheduled: dict[int, HistoryEvent] = {}
        next_run: str | None = None
        for event in events:
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED and self.input is None:
                started = event.workflow_execution_started_event_attributes
                self.input = await self._decode(started.input, ExecutionInput)
                self.started = event.event_time.ToDatetime()
            elif kind in (_SCHEDULED, _INITIATED):
                scheduled[event.event_id] = event
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                done = event.activity_task_completed_event_attributes
                await self._call(scheduled.get(done.scheduled_event_id), done.result)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
                failed = event.activity_task_failed_event_attributes
                await self._failed(scheduled.get(failed.scheduled_event_id), failed.failure)
            elif kind == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
                child = event.child_workflow_execution_completed_event_attributes
                await self._child(scheduled.get(child.initiated_event_id), child.result)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                await self._signal(event)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                attributes = event.workflow_execution_continued_as_new_event_attributes
                next_run = attributes.new_execution_run_id
        return next_run

    async def _request(self, start: HistoryEvent | None) -> tuple[str, Any] | None:
        if start is None or start.event_type != _SCHEDULED:
            return None
        attributes = start.activity_task_scheduled_event_attributes
        models = CALLS.get(attributes.activity_type.name)
        if models is None:
            return None
        request = await self._decode(attributes.input, models[0])
        return attributes.activity_type.name, request

    async def _call(self, start: HistoryEvent | None, result: Payloads) -> None:
        found = await self._request(start)
        if found is None:
            return
        activity, request = found
        answer = await self._decode(result, CALLS[activity][1])
        value = answer.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude={"log_written", "cancelled"}
        )
        if activity == CALL_LLM:  # what the engine adds after the call is not the answer
            value = {k: v for k, v in value.items() if k not in ("attempts", "repairs")}
        key = mock_key(activity, request.path or request.step_id)
        self.answers.setdefault(key, []).append(value)

    async def _failed(self, start: HistoryEvent | None, failure: Any) -> None:
        found = await self._request(start)
        if found is None:
            return
        activity, request = found
        key = mock_key(activity, request.path or request.step_id)
        info = failure.application_failure_info
        self.errors.setdefault(
            key, {"type": info.type or "ActivityError", "message": failure.message}
        )

    async def _child(self, start: HistoryEvent | None, result: Payloads) -> None:
        if start is None or start.event_type != _INITIATED:
            return
        attributes = start.start_child_workflow_execution_initiated_event_attributes
        if attributes.workflow_type.name != WORKFLOW_TYPE:
            return  # a foreach share: its calls are in its own history (not recorded)
        child: ExecutionInput = await self._decode(attributes.input, ExecutionInput)
        state: ExecutionState = await self._decode(result, ExecutionState)
        if child.parent_path is not None:  # an agent's workflow tool: by `agent.tool`
            outputs = state.model_dump(mode="json")["outputs"]
            key = mock_key(SEND_HTTP_REQUEST, child.parent_path)
            self.answers.setdefault(key, []).append(outputs)

    async def _signal(self, event: HistoryEvent) -> None:
        attributes = event.workflow_execution_signaled_event_attributes
        if attributes.signal_name in ENGINE_SIGNALS:
            return
        payload = await self._decode(attributes.input, Any) if attributes.input.payloads else None
        after = 0.0
        if self.started is not None:
            after = max((event.event_time.ToDatetime() - self.started).total_seconds(), 0.0)
        self.signals.append(
            {"name": attributes.signal_name, "payload": payload, "after_seconds": round(after, 3)}
        )

    def mocks(self) -> dict[str, Any]:
        mocks: dict[str, Any] = {}
        for key, answers in self.answers.items():
            mocks[key] = {"result": answers[0]} if len(answers) == 1 else {"results": answers}
        for key, error in self.errors.items():
            if key not in mocks:  # a call that failed, never to succeed later
                mocks[key] = {"error": error}
        return mocks


_SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
_INITIATED = EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED


async def final_state(handle: WorkflowHandle[Any, Any], closed: bool) -> ExecutionState:
    """How a finished run ended (its result, or its status once it failed)."""
    if not closed:
        raise ApiError(
            409,
            "execution_running",
            f"execution '{handle.id}' is still running: record it once it has finished",
        )
    try:
        result = await handle.result()
        return ExecutionState.model_validate(result)
    except WorkflowFailureError:
        state: ExecutionState = await handle.query(STATUS_QUERY, result_type=ExecutionState)
        return state


async def recorded_case(client: Client, execution_id: str, state: ExecutionState) -> dict[str, Any]:
    """A test file with one case: the finished run ``execution_id`` (its ``state``)."""
    recorder = _Recorder(client)
    run_id: str | None = state.run_id
    for _ in range(MAX_RUNS):
        if run_id is None:
            break
        handle = client.get_workflow_handle(execution_id, run_id=run_id)
        run_id = await recorder.run([event async for event in handle.fetch_history_events()])
    assert recorder.input is not None
    data = state.model_dump(mode="json", by_alias=True)
    expect: dict[str, Any] = {"status": state.status, "outputs": data["outputs"]}
    if state.error is not None:
        expect["error_type"] = state.error.type
    expect["steps"] = [r.step_id for r in sorted(state.steps, key=lambda r: r.seq)]
    case = {
        "name": f"recorded from {execution_id}",
        "input_vars": recorder.input.input_vars,
        "mocks": recorder.mocks(),
        "signals": recorder.signals,
        "expect": expect,
    }
    return {
        "workflow_id": state.workflow_id,
        "version": state.definition_version,
        "cases": [case],
    }
