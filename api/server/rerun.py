"""What a rerun may reuse (README "Rerun from a step"): the results its source already paid for.

Every completed activity step (`ai`, `http`, `mcp`) and sub-workflow of the source is in its
Temporal history: the request as the workflow rendered it (the activity's input, which carries the
step's path and visit number) and the result. A rerun gets them keyed by
:func:`workflows.messages.request_key`; the workflow takes a result only for a request it
renders identically (same path, same rendered fields), so an edited input or a newer
definition that changes a request makes that step run fresh.

Only results recorded *before* the cutoff are offered: the last visit of ``from_step`` or, by
default, of the step that failed (or was cancelled). The whole chain of runs is read (a
source that continued as new), the shares of a large foreach (their own child histories), and
what the source itself reused when it was a rerun. Large values stay references: the history
holds claim-check references, decoded here and stored again by reference when the rerun starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from workflows.messages import (
    CALL_LLM,
    CALL_MCP_TOOL,
    FOREACH_BATCH_TYPE,
    SEND_HTTP_REQUEST,
    WORKFLOW_TYPE,
    AIRequest,
    AIResult,
    ExecutionState,
    HTTPRequest,
    HTTPResult,
    MCPCallRequest,
    MCPCallResult,
    ReusedResult,
    request_key,
)
from workflows.shared import ExecutionInput

logger = logging.getLogger(__name__)

# The activities whose results a rerun may reuse: their input and result models.
REUSABLE = {
    CALL_LLM: (AIRequest, AIResult),
    SEND_HTTP_REQUEST: (HTTPRequest, HTTPResult),
    CALL_MCP_TOOL: (MCPCallRequest, MCPCallResult),
}
MAX_RUNS = 1_000  # continue-as-new links followed at most (a guard, not a limit in practice)


@dataclass
class Recorded:
    """What the source recorded: its first input and the results offered to the rerun."""

    input: ExecutionInput | None = None
    results: dict[str, ReusedResult] = field(default_factory=dict)


async def recorded_results(
    client: Client, execution_id: str, first_run_id: str, cutoff_seq: int | None
) -> Recorded:
    """Results of ``execution_id`` (from its first run on) recorded before ``cutoff_seq``."""
    reader = _HistoryReader(client, Recorded())
    run_id: str | None = first_run_id
    for _ in range(MAX_RUNS):
        if run_id is None:
            break
        events = await _history(client, execution_id, run_id)
        run_id = await reader.run(events, cutoff_seq)
    # Whichever run or share made the call, the rerun took it from this execution.
    results = reader.recorded.results
    for key, reused in results.items():
        results[key] = reused.model_copy(update={"source": execution_id})
    return reader.recorded


async def _history(client: Client, workflow_id: str, run_id: str | None) -> list[HistoryEvent]:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    return [event async for event in handle.fetch_history_events()]


@dataclass
class _HistoryReader:
    """Adds what histories recorded to ``recorded``."""

    client: Client
    recorded: Recorded

    async def _decode(self, payloads: Payloads, kind: type[Any]) -> Any:
        values = await self.client.data_converter.decode(list(payloads.payloads), [kind])
        return values[0] if values else None

    async def run(self, events: list[HistoryEvent], cutoff_seq: int | None) -> str | None:
        """Add one run's results; returns the run it continued as, if any."""
        started: dict[int, HistoryEvent] = {}  # scheduled activities, initiated children: by id
        next_run: str | None = None
        for event in events:
            kind = event.event_type
            if (
                kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
                and self.recorded.input is None
            ):
                attributes = event.workflow_execution_started_event_attributes
                self.recorded.input = await self._decode(attributes.input, ExecutionInput)
            elif kind in (_SCHEDULED, _INITIATED):
                started[event.event_id] = event
            elif (completed := _completed(event)) is not None:
                start = started.get(completed[0])
                if start is not None and start.event_type == _SCHEDULED:
                    await self._activity(start, completed[1], cutoff_seq)
                elif start is not None:
                    await self._child(start, completed[1], cutoff_seq)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                next_run = (
                    event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                )
        return next_run

    async def _activity(self, start: HistoryEvent, result: Payloads, cutoff: int | None) -> None:
        attributes = start.activity_task_scheduled_event_attributes
        models = REUSABLE.get(attributes.activity_type.name)
        if models is None:
            return
        request = await self._decode(attributes.input, models[0])
        if not _before(request.seq, cutoff):
            return
        answer = await self._decode(result, models[1])
        if getattr(answer, "cancelled", False):
            return  # an answer paid for after its step was cancelled: no result to reuse
        key = request_key(attributes.activity_type.name, request)
        self.recorded.results[key] = ReusedResult(
            result=answer.model_dump(
                mode="json", by_alias=True, exclude={"log_written", "cancelled"}
            ),
            source=request.execution_id,
        )

    async def _child(self, start: HistoryEvent, result: Payloads, cutoff: int | None) -> None:
        attributes = start.start_child_workflow_execution_initiated_event_attributes
        child_id = attributes.workflow_id
        if attributes.workflow_type.name == FOREACH_BATCH_TYPE:
            # A share of a large foreach: its steps' results are in its own history. Its visit
            # numbers are its own, so the cutoff (a number of the parent's) cannot apply inside.
            await self.run(await _history(self.client, child_id, None), None)
            return
        if attributes.workflow_type.name != WORKFLOW_TYPE:
            return
        child: ExecutionInput = await self._decode(attributes.input, ExecutionInput)
        seq = child.parent_seq if child.parent_seq is not None else _child_seq(child_id)
        if child.parent_path is None or not _before(seq, cutoff):
            return
        state: ExecutionState = await self._decode(result, ExecutionState)
        key = request_key(
            "sub_workflow",
            {
                "path": child.parent_path,
                "workflow_id": child.definition.key,
                "version": child.definition_version,
                "input_vars": child.input_vars,
            },
        )
        self.recorded.results[key] = ReusedResult(result=state.outputs, source=child_id)


_SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
_INITIATED = EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED


def _completed(event: HistoryEvent) -> tuple[int, Payloads] | None:
    """For a completed activity or child: the id of the event that started it, the result."""
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        activity = event.activity_task_completed_event_attributes
        return activity.scheduled_event_id, activity.result
    if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
        child = event.child_workflow_execution_completed_event_attributes
        return child.initiated_event_id, child.result
    return None


def _child_seq(child_id: str) -> int | None:
    """Children of earlier versions: the id ends with the parent step visit's number
    (`<parent>-<step>-<seq>`; now the input says, `parent_seq`)."""
    tail = child_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _before(seq: int | None, cutoff_seq: int | None) -> bool:
    if cutoff_seq is None:
        return True
    return seq is not None and seq < cutoff_seq


def cutoff_for(
    records: list[dict[str, Any]], from_step: str | None, source_completed: bool
) -> int | None:
    """The visit number reuse stops at: the last visit of ``from_step`` (an id or a path); by
    default, for a source that did not complete, the last step that failed or was cancelled
    (in a parallel or foreach, the innermost one, which comes after its holder). None when
    nothing stops it."""
    if from_step is not None:
        visits = [
            int(r["seq"])
            for r in records
            if from_step in (r.get("path"), r.get("step_id")) and isinstance(r.get("seq"), int)
        ]
        return max(visits) if visits else None
    if source_completed:
        return None
    ended = [
        int(r["seq"])
        for r in records
        if r.get("status") in ("failed", "cancelled") and isinstance(r.get("seq"), int)
    ]
    return max(ended) if ended else None


def inherited(
    source_id: str,
    source_input: ExecutionInput,
    records: list[dict[str, Any]],
    cutoff_seq: int | None,
) -> dict[str, ReusedResult]:
    """What the source (itself a rerun) reused before the cutoff: offered again, as its own."""
    offered: dict[str, ReusedResult] = {}
    for record in records:
        key = record.get("reuse_key")
        if key and key in source_input.reuse and _before(record.get("seq"), cutoff_seq):
            offered[key] = source_input.reuse[key].model_copy(update={"source": source_id})
    return offered
