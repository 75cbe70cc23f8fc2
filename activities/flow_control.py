"""The local activities of flow control (workflows/flow/): the Temporal calls a workflow
cannot make itself.

``request_concurrency_place`` update-with-starts a key's coordinator, so the coordinator exists
the moment a run asks; ``closed_executions`` tells the coordinator which holders Temporal closed
without our code running (terminate, a Temporal-side timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from workflows.flow.messages import (
    CLOSED_EXECUTIONS,
    CONCURRENCY_COORDINATOR,
    PLACE_UPDATE,
    REQUEST_PLACE,
    ClosedExecutions,
    CoordinatorState,
    PlaceRequest,
    RequestPlace,
)


@dataclass
class FlowControlActivities:
    """Activities that need the worker's Temporal client."""

    client: Client

    @activity.defn(name=REQUEST_PLACE)
    async def request_concurrency_place(self, request: RequestPlace) -> bool:
        """Ask the key's coordinator for a place (starting it if none runs): True if the place
        is the run's at once. Asking twice is harmless: the coordinator knows each run once."""
        claim = request.claim
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            CONCURRENCY_COORDINATOR,
            CoordinatorState(workflow_id=request.workflow_id, key=claim.key, limit=claim.limit),
            id=claim.coordinator_id,
            task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"concurrency: {request.workflow_id} · key {claim.key[:100]}",
        )
        place = PlaceRequest(execution_id=request.execution_id, limit=claim.limit)
        return await self.client.execute_update_with_start_workflow(
            PLACE_UPDATE, place, start_workflow_operation=start, result_type=bool
        )

    @activity.defn(name=CLOSED_EXECUTIONS)
    async def closed_executions(self, request: ClosedExecutions) -> list[str]:
        """Which of these executions no longer run (their latest run closed, or gone)."""
        closed = []
        for execution_id in request.execution_ids:
            try:
                description = await self.client.get_workflow_handle(execution_id).describe()
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
                closed.append(execution_id)
                continue
            if description.status != WorkflowExecutionStatus.RUNNING:
                closed.append(execution_id)
        return closed
