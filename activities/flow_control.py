"""The local activities of flow control (workflows/flow/): the Temporal calls a workflow
cannot make itself.

``request_concurrency_place`` update-with-starts a key's coordinator, so the coordinator exists
the moment a run asks; ``closed_executions`` tells the coordinator which holders Temporal closed
without our code running (terminate, a Temporal-side timeout).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.runtime.temporal_client import start_outcome_seen
from workflows.flow.messages import (
    CLOSED_EXECUTIONS,
    CONCURRENCY_COORDINATOR,
    PLACE_SIGNAL,
    PLACE_UPDATE,
    REQUEST_PLACE,
    ClosedExecutions,
    CoordinatorState,
    PlaceRequest,
    RequestPlace,
)

# Temporal takes about ten updates in flight per workflow: past this many from one worker, a
# run asks by signal (it is queued behind others anyway).
UPDATES_AT_ONCE = 3
# How long a place request waits for the coordinator's answer before asking by signal.
UPDATE_WAIT = timedelta(seconds=2)
# Temporal's answers when a workflow has too many updates in flight (or the server is busy).
_BUSY = (RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED)


@dataclass
class FlowControlActivities:
    """Activities that need the worker's Temporal client."""

    client: Client
    _asking: dict[str, asyncio.Semaphore] = field(default_factory=dict, init=False, repr=False)

    @activity.defn(name=REQUEST_PLACE)
    async def request_concurrency_place(self, request: RequestPlace) -> bool:
        """Ask the key's coordinator for a place (starting it if none runs): True if the place
        is the run's at once. Asking twice is harmless: the coordinator knows each run once.

        The answer comes from an update; Temporal takes only a few updates in flight per
        workflow, so in a burst of starts the request goes as a signal instead (the run then
        waits for its grant signal, as queued runs do anyway)."""
        claim = request.claim
        place = PlaceRequest(
            execution_id=request.execution_id, limit=claim.limit, started_at=request.started_at
        )
        asking = self._asking.setdefault(claim.coordinator_id, asyncio.Semaphore(UPDATES_AT_ONCE))
        if not asking.locked():  # uncontended: the answer may be "yours"
            async with asking:
                operation = self._coordinator(request)
                try:
                    return await self.client.execute_update_with_start_workflow(
                        PLACE_UPDATE,
                        place,
                        start_workflow_operation=operation,
                        result_type=bool,
                        rpc_timeout=UPDATE_WAIT,
                    )
                except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
                    await start_outcome_seen(operation)
                    if isinstance(err, RPCError) and err.status not in _BUSY:
                        raise
        await self.client.start_workflow(
            CONCURRENCY_COORDINATOR,
            self._state(request),
            id=claim.coordinator_id,
            task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal=PLACE_SIGNAL,
            start_signal_args=[place],
        )
        return False

    def _coordinator(self, request: RequestPlace) -> WithStartWorkflowOperation[Any, Any]:
        claim = request.claim
        return WithStartWorkflowOperation(
            CONCURRENCY_COORDINATOR,
            self._state(request),
            id=claim.coordinator_id,
            task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"concurrency: {request.workflow_id} · key {claim.key[:100]}",
        )

    @staticmethod
    def _state(request: RequestPlace) -> CoordinatorState:
        claim = request.claim
        return CoordinatorState(workflow_id=request.workflow_id, key=claim.key, limit=claim.limit)

    @activity.defn(name=CLOSED_EXECUTIONS)
    async def closed_executions(self, request: ClosedExecutions) -> list[str]:
        """Which of these executions no longer run (their latest run closed, or gone). Asked
        all at once: the coordinator's workflow task, and so its grants, wait for the answer."""
        running = await asyncio.gather(*(self._runs(e) for e in request.execution_ids))
        return [e for e, runs in zip(request.execution_ids, running, strict=True) if not runs]

    async def _runs(self, execution_id: str) -> bool:
        try:
            description = await self.client.get_workflow_handle(execution_id).describe()
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return False
        return description.status == WorkflowExecutionStatus.RUNNING
