"""Reading an execution: Temporal's description, the worker's status view (or, when no worker
answers, what Temporal alone knows), waiting for the end, and the log document."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.logs import InvalidExecutionId, WorkflowLogger
from activities.runtime.settings import Settings
from activities.runtime.temporal_client import closed_by_temporal
from api.server.auth import Principal
from api.server.errors import ApiError
from api.server.executions.common import Links, not_found, temporal_status
from api.server.schemas import ExecutionPublic, RunPublic
from api.server.status import ClosedAnswers, query_view, refuse_too_large
from workflows.errors import FailureType
from workflows.flow.messages import PLACE_QUERY, WAITING_CONCURRENCY, coordinator_id
from workflows.messages import (
    SA_DEFINITION_ID,
    SA_DEFINITION_VERSION,
    SA_STARTED_BY,
    WORKFLOW_TYPE,
    ExecutionError,
    ExecutionState,
    ExecutionView,
    StatusRequest,
    StepRecord,
)
from workflows.status_view import status_view
from workflows.usage import Usage

Handle = WorkflowHandle[Any, Any]
_OPEN = ("RUNNING", "CONTINUED_AS_NEW")


@dataclass
class Reader:
    """Reads executions in the key's scope: status, the end of a run, the log."""

    client: Client
    settings: Settings
    logs: WorkflowLogger
    closed: ClosedAnswers = field(default_factory=ClosedAnswers)

    @cached_property
    def links(self) -> Links:
        return Links(self.settings)

    async def describe(
        self, execution_id: str, principal: Principal
    ) -> tuple[Handle, WorkflowExecutionDescription]:
        """The execution, if it is this deployment's and in the key's scope (404 otherwise)."""
        handle = self.client.get_workflow_handle(execution_id, result_type=ExecutionState)
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise not_found(execution_id) from None
            raise
        if (
            description.workflow_type != WORKFLOW_TYPE
            or description.task_queue != self.settings.temporal_task_queue
        ):
            # Another deployment's (or another program's) execution: not ours to show or touch.
            raise not_found(execution_id)
        if not principal.sees(description.typed_search_attributes.get(SA_DEFINITION_ID)):
            raise not_found(execution_id)
        return handle, description

    async def get(
        self, execution_id: str, principal: Principal, request: StatusRequest | None = None
    ) -> ExecutionPublic:
        """The status, large values summarised unless ``request`` asks for them (status.py)."""
        request = request or StatusRequest(max_bytes=self.settings.api_status_max_bytes)
        handle, description = await self.describe(execution_id, principal)
        t_status, _ = temporal_status(description.status)
        # A finished run's answer never changes: kept, so polling it replays nothing again.
        cacheable = t_status not in _OPEN and request.variables == "summary"
        if cacheable and (kept := self.closed.get(execution_id, description.run_id)):
            return kept
        state: ExecutionView | None = None
        if t_status == "COMPLETED":
            try:
                state = status_view(await handle.result(), request)
            except WorkflowFailureError:
                state = None
        if state is None:
            state = await query_view(handle, request)
            if state is not None and state.status != "running" and t_status == "RUNNING":
                # The run closed between describe and query: report Temporal's new status.
                description = await handle.describe()
                cacheable = False
        if state is None:
            return await self._from_temporal(execution_id, handle, description)
        refuse_too_large(state, execution_id, request)
        answer = await self._from_worker(execution_id, handle, description, state)
        if cacheable:
            self.closed.put(execution_id, description.run_id, answer)
        return answer

    async def _from_worker(
        self,
        execution_id: str,
        handle: Handle,
        description: WorkflowExecutionDescription,
        state: ExecutionView,
    ) -> ExecutionPublic:
        """The worker's view, with Temporal's verdict where Temporal closed the run."""
        t_status, status = temporal_status(description.status)
        data = state.model_dump()
        data.update(
            temporal_status=t_status,
            live=True,
            started_by=description.typed_search_attributes.get(SA_STARTED_BY),
        )
        if data.get("usage") is None:  # workers of earlier versions said null for zero
            data["usage"] = Usage().for_run()
        if t_status not in _OPEN and state.status == "running":
            # A replayed query of a closed run can stop short of its last step: trust
            # Temporal's verdict for the status.
            cancelled = t_status == "CANCELED" or (
                state.error is not None and state.error.type == FailureType.CANCELLED
            )
            data.update(status="cancelled" if cancelled else status, current_step=None)
        if status == "terminated":
            data.update(
                status="terminated",
                current_step=None,
                waiting_for=None,
                waiting_until=None,
                waiting_payload_schema=None,
                ended_at=description.close_time,
                error=await closed_by_temporal(handle, t_status),
                steps=_closed_steps(state.steps, t_status),
            )
        if data.get("waiting_for") == WAITING_CONCURRENCY:
            data["waiting_place"] = await self._place(execution_id, state)
        data["links"] = self.links.of(execution_id, state.run_id)
        return ExecutionPublic(**data)

    async def _place(self, execution_id: str, state: ExecutionView) -> int | None:
        """A waiting run's place in its key's queue, as the key's coordinator says (None if it
        does not answer: the run's status stands without it)."""
        if state.concurrency_key is None:
            return None
        coordinator = coordinator_id(str(state.workflow_id), state.concurrency_key)
        try:
            place = await self.client.get_workflow_handle(coordinator).query(
                PLACE_QUERY, execution_id
            )
        except RPCError:
            return None
        return place if isinstance(place, int) and place > 0 else None

    async def _from_temporal(
        self, execution_id: str, handle: Handle, description: WorkflowExecutionDescription
    ) -> ExecutionPublic:
        """No worker answered: what Temporal itself knows."""
        t_status, status = temporal_status(description.status)
        attributes = description.typed_search_attributes
        error = None
        if status == "terminated":
            error = await closed_by_temporal(handle, t_status)
        elif status == "failed":
            error = ExecutionError(type=t_status.title(), message=f"execution {t_status.lower()}")
        return ExecutionPublic(
            execution_id=execution_id,
            run_id=description.run_id,
            workflow_id=attributes.get(SA_DEFINITION_ID),
            definition_version=attributes.get(SA_DEFINITION_VERSION),
            started_by=attributes.get(SA_STARTED_BY),
            status=status,  # type: ignore[arg-type]
            temporal_status=t_status,
            started_at=description.start_time,
            ended_at=description.close_time,
            error=error,
            live=False,
            links=self.links.of(execution_id, description.run_id),
        )

    async def wait(
        self,
        run: RunPublic,
        timeout: float,
        principal: Principal,
        request: StatusRequest | None = None,
    ) -> ExecutionPublic | None:
        """Wait for the run to finish; None on timeout."""
        handle = self.client.get_workflow_handle(run.execution_id, result_type=ExecutionState)
        try:
            await asyncio.wait_for(handle.result(), timeout)
        except WorkflowFailureError:
            pass
        except TimeoutError:
            return None
        return await self.get(run.execution_id, principal, request)

    async def read_log(self, execution_id: str, principal: Principal) -> dict[str, Any]:
        """The execution log document (README "Execution logs"), if in the key's scope."""
        try:
            document = await self.logs.aread(execution_id)
        except InvalidExecutionId:
            raise not_found(execution_id) from None
        if document is None or not principal.sees(document.get("workflow_id")):
            raise ApiError(404, "log_not_found", f"no log for execution '{execution_id}'")
        return document


def _closed_steps(steps: list[StepRecord], t_status: str) -> list[StepRecord]:
    """A step still "running" when Temporal closed the run did not finish: say so."""
    reason = "terminated" if t_status == "TERMINATED" else "timed out"
    return [
        step.model_copy(update={"status": "failed", "error": f"the run was {reason}",
                                "error_type": "Terminated"})
        if step.status == "running" else step
        for step in steps
    ]  # fmt: skip
