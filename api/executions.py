"""Starting, inspecting, cancelling and signalling executions on Temporal.

The routes stay thin: they parse and authorise, then call :class:`ExecutionService`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from jsonschema import Draft202012Validator
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from activities.logs import InvalidExecutionId, WorkflowLogger
from api.errors import ApiError
from api.schemas import AcceptedPublic, ExecutionPublic, RunPublic
from api.store import DefinitionNotFound, DefinitionStore, StoredDefinition
from workflows.errors import DefinitionError, FailureType
from workflows.settings import Settings
from workflows.shared import (
    CANCEL_SIGNAL,
    SA_DEFINITION_ID,
    SA_DEFINITION_VERSION,
    SA_STARTED_BY,
    SA_STATUS,
    STATUS_QUERY,
    WORKFLOW_TYPE,
    CancelRequest,
    ExecutionError,
    ExecutionInput,
    ExecutionState,
)

logger = logging.getLogger(__name__)

QUERY_TIMEOUT = timedelta(seconds=5)

_TEMPORAL_STATUS = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING: ("RUNNING", "running"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: ("COMPLETED", "completed"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: ("FAILED", "failed"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: ("CANCELED", "cancelled"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: ("TERMINATED", "failed"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: ("TIMED_OUT", "failed"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: (
        "CONTINUED_AS_NEW",
        "running",
    ),
}


def with_defaults(definition_inputs: dict[str, Any] | None, input_vars: Any) -> Any:
    """Fill top-level `default`s of the `inputs` schema for variables the caller left out."""
    if not isinstance(input_vars, dict) or not definition_inputs:
        return input_vars
    properties = definition_inputs.get("properties")
    if not isinstance(properties, dict):
        return input_vars
    filled = dict(input_vars)
    for name, schema in properties.items():
        if name not in filled and isinstance(schema, dict) and "default" in schema:
            filled[name] = schema["default"]
    return filled


def input_problems(
    definition_inputs: dict[str, Any] | None, input_vars: Any
) -> list[dict[str, Any]]:
    """Check input_vars against the definition's `inputs` JSON Schema."""
    if not isinstance(input_vars, dict):
        return [
            {
                "code": "invalid_input",
                "message": "input_vars must be a JSON object",
                "path": "$.input_vars",
            }
        ]
    reserved = sorted({"execution", "secrets"} & set(input_vars))
    if reserved:
        return [
            {
                "code": "invalid_input",
                "message": f"'{name}' is reserved and cannot be an input",
                "path": f"$.input_vars.{name}",
            }
            for name in reserved
        ]
    if not definition_inputs:
        return []
    problems = []
    for error in sorted(
        Draft202012Validator(definition_inputs).iter_errors(input_vars), key=lambda e: list(e.path)
    ):
        path = "$.input_vars" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        problems.append({"code": "invalid_input", "message": error.message, "path": path})
    return problems


class ExecutionService:
    def __init__(
        self, client: Client, settings: Settings, store: DefinitionStore, logs: WorkflowLogger
    ) -> None:
        self._client = client
        self._settings = settings
        self._store = store
        self._logs = logs

    # -- links ------------------------------------------------------------------------------

    def ui_link(self, execution_id: str, run_id: str | None = None) -> str:
        base = f"{self._settings.temporal_ui_url}/namespaces/{self._settings.temporal_namespace}"
        return f"{base}/workflows/{execution_id}" + (f"/{run_id}/history" if run_id else "")

    def _links(self, execution_id: str, run_id: str | None) -> dict[str, str]:
        return {
            "self": f"/api/executions/{execution_id}",
            "log": f"/api/executions/{execution_id}/log",
            "temporal_ui": self.ui_link(execution_id, run_id),
        }

    # -- start ------------------------------------------------------------------------------

    def load(self, workflow_id: str, version: int | None = None) -> StoredDefinition:
        try:
            return self._store.get(workflow_id, version)
        except DefinitionNotFound as err:
            raise ApiError(404, "workflow_not_found", str(err), "$.workflow_id") from None
        except DefinitionError as err:
            raise ApiError.from_problems(422, err.problems) from None

    async def start(
        self,
        workflow_id: str,
        input_vars: Any,
        started_by: str | None = None,
        execution_id: str | None = None,
    ) -> RunPublic:
        stored = self.load(workflow_id)
        input_vars = with_defaults(stored.definition.inputs, input_vars)
        problems = input_problems(stored.definition.inputs, input_vars)
        if problems:
            first, *rest = problems
            raise ApiError(422, first["code"], first["message"], first["path"], more=rest)
        execution_id = execution_id or str(uuid.uuid4())
        definition = stored.definition
        pairs = [
            SearchAttributePair(SA_DEFINITION_ID, definition.key),
            SearchAttributePair(SA_STATUS, "running"),
            SearchAttributePair(SA_DEFINITION_VERSION, stored.version),
        ]
        if started_by:
            pairs.append(SearchAttributePair(SA_STARTED_BY, started_by))
        handle = await self._client.start_workflow(
            WORKFLOW_TYPE,
            ExecutionInput(
                definition=definition,
                input_vars=input_vars,
                definition_version=stored.version,
                definition_hash=stored.hash,
                started_by=started_by,
            ),
            id=execution_id,
            task_queue=self._settings.temporal_task_queue,
            search_attributes=TypedSearchAttributes(pairs),
            static_summary=f"{definition.title} · v{stored.version}",
            static_details=(
                f"**Workflow** `{definition.key}` version {stored.version} ({stored.hash[:19]})"
                + (f"\n\nStarted by `{started_by}`" if started_by else "")
            ),
        )
        run_id = handle.result_run_id or handle.first_execution_run_id
        assert run_id is not None  # set by start_workflow
        logger.info(
            "started %s (%s v%d) run %s", execution_id, definition.key, stored.version, run_id
        )
        return RunPublic(
            execution_id=execution_id,
            run_id=run_id,
            status="running",
            workflow_id=definition.id,
            definition_version=stored.version,
            links=self._links(execution_id, run_id),
        )

    # -- inspect ----------------------------------------------------------------------------

    async def describe(
        self, execution_id: str
    ) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
        handle = self._client.get_workflow_handle(execution_id, result_type=ExecutionState)
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise self.not_found(execution_id) from None
            raise
        if description.workflow_type != WORKFLOW_TYPE:
            raise self.not_found(execution_id)
        return handle, description

    @staticmethod
    def not_found(execution_id: str) -> ApiError:
        return ApiError(404, "execution_not_found", f"no execution '{execution_id}'")

    async def get(self, execution_id: str) -> ExecutionPublic:
        handle, description = await self.describe(execution_id)
        temporal_status, status = _TEMPORAL_STATUS.get(
            description.status or WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING,
            ("UNKNOWN", "running"),
        )
        state: ExecutionState | None = None
        if temporal_status == "COMPLETED":
            try:
                state = await handle.result()
            except WorkflowFailureError:
                state = None
        if state is None:
            state = await self._query(handle)
            if state is not None and state.status != "running" and temporal_status == "RUNNING":
                # The run closed between describe and query: report Temporal's new status.
                description = await handle.describe()
                temporal_status, status = _TEMPORAL_STATUS.get(
                    description.status or WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING,
                    ("UNKNOWN", "running"),
                )
        run_id = description.run_id
        if state is not None:
            data = state.model_dump()
            data.update(temporal_status=temporal_status, live=True)
            if temporal_status not in ("RUNNING", "CONTINUED_AS_NEW") and state.status == "running":
                # A replayed query of a closed run can stop short of its last step: trust
                # Temporal's verdict for the status.
                cancelled = temporal_status == "CANCELED" or (
                    state.error is not None and state.error.type == FailureType.CANCELLED
                )
                data.update(status="cancelled" if cancelled else status, current_step=None)
            if temporal_status == "TERMINATED":
                data.update(
                    status="failed",
                    error=ExecutionError(
                        type="Terminated", message="terminated in Temporal (no cleanup ran)"
                    ),
                )
            data["links"] = self._links(execution_id, state.run_id)
            return ExecutionPublic(**data)
        # No worker answered: report what Temporal itself knows.
        error = None
        if status == "failed":
            error = ExecutionError(
                type=temporal_status.title(), message=f"execution {temporal_status.lower()}"
            )
        attributes = description.typed_search_attributes
        return ExecutionPublic(
            execution_id=execution_id,
            run_id=run_id,
            workflow_id=attributes.get(SA_DEFINITION_ID),
            definition_version=attributes.get(SA_DEFINITION_VERSION),
            status=status,
            temporal_status=temporal_status,
            started_at=description.start_time,
            ended_at=description.close_time,
            error=error,
            live=False,
            links=self._links(execution_id, run_id),
        )

    async def _query(self, handle: WorkflowHandle[Any, Any]) -> ExecutionState | None:
        try:
            return await handle.query(
                STATUS_QUERY, result_type=ExecutionState, rpc_timeout=QUERY_TIMEOUT
            )
        except (WorkflowQueryFailedError, RPCError) as err:
            logger.warning("status query for %s failed: %s", handle.id, err)
            return None

    # -- control ----------------------------------------------------------------------------

    async def cancel(
        self, execution_id: str, reason: str, requested_by: str | None
    ) -> AcceptedPublic:
        handle, description = await self.describe(execution_id)
        self._require_running(execution_id, description)
        request = CancelRequest(reason=reason, requested_by=requested_by)
        # The signal records who asked and why; Temporal's own cancellation then closes the
        # run as Canceled in the UI. The workflow handles either arriving first.
        await handle.signal(CANCEL_SIGNAL, request)
        try:
            await handle.cancel(reason=reason)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        return AcceptedPublic(execution_id=execution_id, status="cancelling")

    async def signal(self, execution_id: str, name: str, payload: Any) -> AcceptedPublic:
        handle, description = await self.describe(execution_id)
        self._require_running(execution_id, description)
        await handle.signal(name, payload)
        return AcceptedPublic(execution_id=execution_id, status="delivered", signal=name)

    def _require_running(
        self, execution_id: str, description: WorkflowExecutionDescription
    ) -> None:
        temporal_status, status = _TEMPORAL_STATUS.get(description.status, ("UNKNOWN", "running"))  # type: ignore[arg-type]
        if temporal_status != "RUNNING":
            raise ApiError(
                409,
                "execution_not_running",
                f"execution '{execution_id}' has already finished ({status}); nothing changed",
            )

    def read_log(self, execution_id: str) -> dict[str, Any]:
        try:
            document = self._logs.read(execution_id)
        except InvalidExecutionId:
            raise self.not_found(execution_id) from None
        if document is None:
            raise ApiError(404, "log_not_found", f"no log for execution '{execution_id}'")
        return document
