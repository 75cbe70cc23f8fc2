"""Starting, listing, inspecting, cancelling and signalling executions on Temporal.

The routes stay thin: they parse and authenticate, then call :class:`ExecutionService`, which
applies the key's scope (404 outside it) and role (403) to every object it touches.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.errors import InvalidExecutionId
from activities.logs import WorkflowLogger
from activities.runtime.settings import Settings
from activities.runtime.temporal_client import closed_by_temporal
from api.server.auth import Action, Principal
from api.server.errors import ApiError
from api.server.library import library_for, require_scope
from api.server.limits import RateLimiter, retry_after_header
from api.server.pollers import PollerReport, WorkerPollers
from api.server.rerun import cutoff_for, inherited, recorded_results
from api.server.schemas import (
    AcceptedPublic,
    ExecutionListPublic,
    ExecutionPublic,
    ExecutionSummary,
    RerunCreate,
    RunPublic,
)
from api.server.status import SIGNAL_CHECK, ClosedAnswers, query_view, refuse_too_large
from api.server.store import DefinitionNotFound, DefinitionStore, StoredDefinition
from workflows.definition import RunLimits, WorkflowDefinition
from workflows.errors import DefinitionError, FailureType
from workflows.input_schema import VIOLATION, value_problems_async
from workflows.kinds import kind_of
from workflows.messages import (
    CANCEL_SIGNAL,
    SA_COST_USD,
    SA_DEFINITION_ID,
    SA_DEFINITION_VERSION,
    SA_STARTED_BY,
    SA_STATUS,
    SA_TOKENS,
    WORKFLOW_TYPE,
    CancelRequest,
    ExecutionError,
    ExecutionLimits,
    ExecutionState,
    ExecutionView,
    StatusRequest,
    StepRecord,
)
from workflows.run_inputs import checked_inputs
from workflows.shared import ExecutionInput, LibraryEntry
from workflows.status_view import status_view
from workflows.usage import Usage

logger = logging.getLogger(__name__)

STATUSES = ("running", "completed", "failed", "cancelled", "terminated")

_TEMPORAL_STATUS = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING: ("RUNNING", "running"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: ("COMPLETED", "completed"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: ("FAILED", "failed"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: ("CANCELED", "cancelled"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: ("TERMINATED", "terminated"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: ("TIMED_OUT", "terminated"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: (
        "CONTINUED_AS_NEW",
        "running",
    ),
}


def temporal_status(status: Any) -> tuple[str, str]:
    """(Temporal's name, our status) for a WorkflowExecutionStatus."""
    return _TEMPORAL_STATUS.get(status, ("RUNNING", "running"))


def raise_problems(problems: list[dict[str, Any]], status: int = 422) -> None:
    if problems:
        first, *rest = problems
        raise ApiError(status, first["code"], first["message"], first.get("path"), more=rest)


def request_hash(workflow_id: str, input_vars: Any) -> str:
    canonical = json.dumps(
        {"workflow_id": workflow_id, "input_vars": input_vars},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


class DuplicateStart(Exception):
    """The execution an idempotency key names exists already (``start(refuse_duplicate=True)``)."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(execution_id)
        self.execution_id = execution_id


@dataclass(frozen=True)
class StartOptions:
    """Everything Temporal needs to start one execution of a stored definition."""

    input: ExecutionInput
    search_attributes: TypedSearchAttributes
    static_summary: str
    static_details: str


def execution_limits(definition: WorkflowDefinition, settings: Settings) -> ExecutionLimits:
    """The operator's limits, lowered by what the definition asks for (README "Limits")."""
    own = definition.limits or RunLimits()
    return ExecutionLimits(
        max_steps=min(own.max_steps or settings.execution_max_steps, settings.execution_max_steps),
        timeout_seconds=min(
            definition.timeout_seconds or settings.execution_timeout_seconds,
            settings.execution_timeout_seconds,
        ),
        max_value_bytes=min(
            own.max_value_bytes or settings.max_value_bytes, settings.max_value_bytes
        ),
        max_buffered_signals=settings.signal_buffer_max,
        foreach_max_items=settings.foreach_max_items,
        max_descendants=settings.execution_max_descendants,
    )


def start_options(
    stored: StoredDefinition,
    input_vars: dict[str, Any],
    started_by: str | None,
    max_steps_per_run: int | None = None,
    limits: ExecutionLimits | None = None,
    library: dict[str, LibraryEntry] | None = None,
    api_url: str | None = None,
) -> StartOptions:
    """Shared by API starts, webhooks and schedules, so every run looks the same in the UI.
    ``api_url``: this API's base URL, which the run reads as ``{execution.api_url}``."""
    definition = stored.definition
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(SA_DEFINITION_ID, definition.key),
        SearchAttributePair(SA_STATUS, "running"),
        SearchAttributePair(SA_DEFINITION_VERSION, stored.version),
    ]
    if started_by:
        pairs.append(SearchAttributePair(SA_STARTED_BY, started_by))
    return StartOptions(
        input=ExecutionInput(
            definition=definition,
            input_vars=input_vars,
            definition_version=stored.version,
            definition_hash=stored.hash,
            started_by=started_by,
            max_steps_per_run=max_steps_per_run,
            limits=limits,
            library=library or {},
            api_url=api_url,
        ),
        search_attributes=TypedSearchAttributes(pairs),
        static_summary=f"{definition.title} · v{stored.version}",
        static_details=(
            f"**Workflow** `{definition.key}` version {stored.version} ({stored.hash[:19]})"
            + (f"\n\nStarted by `{started_by}`" if started_by else "")
        ),
    )


class ExecutionService:
    def __init__(
        self,
        client: Client,
        settings: Settings,
        store: DefinitionStore,
        logs: WorkflowLogger,
        signal_limiter: RateLimiter | None = None,
        page_tokens: PageTokens | None = None,
        pollers: WorkerPollers | None = None,
        closed: ClosedAnswers | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._store = store
        self._logs = logs
        self._signal_limiter = signal_limiter
        self._page_tokens = page_tokens or PageTokens(page_token_secret(settings))
        self._pollers = pollers
        self._closed = closed or ClosedAnswers()

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

    def load(
        self, workflow_id: str, principal: Principal, version: int | None = None
    ) -> StoredDefinition:
        if not principal.sees(workflow_id):
            raise ApiError(
                404, "workflow_not_found", f"no workflow named '{workflow_id}'", "$.workflow_id"
            )
        try:
            return self._store.get(workflow_id, version)
        except DefinitionNotFound as err:
            raise ApiError(404, "workflow_not_found", str(err), "$.workflow_id") from None
        except DefinitionError as err:
            raise ApiError.from_problems(422, err.problems) from None

    def runnable(
        self, workflow_id: str, principal: Principal, version: int | None = None
    ) -> StoredDefinition:
        """The one check every way to a run passes (an API start, a rerun, a webhook; the
        workflows a run calls are checked by :meth:`start` through its library): the key sees
        the workflow and may run it, the workflow is saved now (a deleted one runs on no path),
        and a version other than the current one runs only for a key that manages it."""
        current = self.load(workflow_id, principal)
        _require(principal, Action.RUN, "start executions")
        if version is None or version == current.version:
            return current
        if not principal.can(Action.MANAGE):
            raise ApiError(
                403,
                "superseded_version",
                f"version {version} of workflow '{workflow_id}' is superseded (the current is "
                f"v{current.version}); only a key that may manage the workflow runs a past "
                'version: run the current one (rerun with "version": "latest")',
                "$.version",
            )
        return self.load(workflow_id, principal, version)

    def prepare_inputs(
        self, stored: StoredDefinition, input_vars: Any, where: str = "$.input_vars"
    ) -> dict[str, Any]:
        size = len(json.dumps(input_vars, separators=(",", ":"), default=str))
        if size > self._settings.api_max_input_bytes:
            raise ApiError(
                413,
                "input_too_large",
                f"input_vars is {size} bytes; the limit is {self._settings.api_max_input_bytes} "
                "(API_MAX_INPUT_BYTES)",
                where,
            )
        # Every problem of the request in one answer (the rule every path to a run applies).
        filled, problems = checked_inputs(stored.definition.inputs, input_vars, where)
        raise_problems([problem.as_dict() for problem in problems])
        return filled

    async def start(
        self,
        workflow_id: str,
        input_vars: Any,
        principal: Principal,
        idempotency_key: str | None = None,
        started_by: str | None = None,
        refuse_duplicate: bool = False,
        version: int | None = None,
        rerun: dict[str, Any] | None = None,
    ) -> RunPublic:
        """Start a run; with ``refuse_duplicate``, an idempotency key already used (running or
        closed) raises :class:`DuplicateStart` instead of answering that execution. ``version``
        pins a past version; ``rerun`` holds a rerun's ``rerun_of`` and ``reuse``."""
        stored = self.runnable(workflow_id, principal, version)
        # Schema validation is bounded (RE2, a time budget) but can take a fraction of a
        # second on a large input: off the event loop, so other requests keep flowing.
        inputs = await asyncio.to_thread(self.prepare_inputs, stored, input_vars)
        library = library_for(stored.definition, self._store)
        require_scope(principal, library)
        options = start_options(
            stored,
            inputs,
            started_by or principal.name,
            self._settings.execution_max_steps_per_run,
            execution_limits(stored.definition, self._settings),
            library,
            self._settings.api_url_for_runs,
        )
        if rerun:
            options = dataclasses.replace(
                options,
                input=options.input.model_copy(update=rerun),
                static_summary=f"{options.static_summary} · rerun of {rerun['rerun_of']}",
            )
        digest = request_hash(stored.workflow_id, input_vars)
        # Ids begin with the definition's id, so Temporal's UI and CLI tell runs apart.
        if idempotency_key is None:
            execution_id = f"{stored.workflow_id}-{uuid.uuid4()}"
            conflict = WorkflowIDConflictPolicy.FAIL
            reuse = WorkflowIDReusePolicy.ALLOW_DUPLICATE
        else:
            # The same key from the same caller for the same workflow always names the same
            # execution (a key is scoped to its caller and workflow); Temporal's
            # USE_EXISTING (running) and REJECT_DUPLICATE (closed) make concurrent and repeated
            # requests land on it instead of starting another.
            key_digest = hashlib.sha256(
                f"{principal.name}\x1f{idempotency_key}".encode()
            ).hexdigest()
            execution_id = f"{stored.workflow_id}-idem-{key_digest[:32]}"
            # FAIL (running) and REJECT_DUPLICATE (closed): Temporal itself refuses a replay.
            conflict = (
                WorkflowIDConflictPolicy.FAIL
                if refuse_duplicate
                else WorkflowIDConflictPolicy.USE_EXISTING
            )
            reuse = WorkflowIDReusePolicy.REJECT_DUPLICATE
        # Does a worker poll the queue (else: a `no_worker` warning)? A cached answer costs
        # nothing; a stale one is re-checked while the start RPC runs, never after it.
        pollers: PollerReport | asyncio.Task[PollerReport] | None = None
        if self._pollers is not None:
            pollers = self._pollers.fresh() or self._pollers.refresh(self._client)
        try:
            handle = await self._client.start_workflow(
                WORKFLOW_TYPE,
                options.input,
                id=execution_id,
                task_queue=self._settings.temporal_task_queue,
                search_attributes=options.search_attributes,
                static_summary=options.static_summary,
                static_details=options.static_details,
                memo={"request_hash": digest},
                id_conflict_policy=conflict,
                id_reuse_policy=reuse,
            )
            run_id = handle.result_run_id or handle.first_execution_run_id
        except WorkflowAlreadyStartedError:
            if refuse_duplicate:
                raise DuplicateStart(execution_id) from None
            run_id = None
        if idempotency_key is not None and not refuse_duplicate:
            run_id = await self._check_same_request(execution_id, digest, idempotency_key)
        assert run_id is not None
        logger.info(
            "started %s (%s v%d) run %s",
            execution_id,
            stored.workflow_id,
            stored.version,
            run_id,
            extra={"execution_id": execution_id},
        )
        if isinstance(pollers, asyncio.Task):
            # Shared with concurrent starts: one caller going away must not cancel it.
            pollers = await asyncio.shield(pollers)
        return RunPublic(
            execution_id=execution_id,
            run_id=run_id,
            status="running",
            # Warnings only (a 2xx answer): the run is started either way.
            errors=pollers.warnings() if pollers is not None else [],
            workflow_id=stored.definition.id,
            definition_version=stored.version,
            links=self._links(execution_id, run_id),
            rerun_of=(rerun or {}).get("rerun_of"),
        )

    async def rerun(self, source_id: str, body: RerunCreate, principal: Principal) -> RunPublic:
        """Start a new execution of a finished one, reusing the results it already paid for
        (SPEC §10; api/server/rerun.py reads them from its history)."""
        _, description = await self.describe(source_id, principal)
        _require(principal, Action.RUN, "start executions")
        _, status = temporal_status(description.status)
        if status == "running":
            raise ApiError(
                409,
                "execution_running",
                f"execution '{source_id}' is still running: rerun it once it has finished "
                "(or cancel it first)",
            )
        try:
            log = await self._logs.aread(source_id) or {}
        except InvalidExecutionId:
            log = {}
        records: list[dict[str, Any]] = list(log.get("steps") or [])
        cutoff = cutoff_for(records, body.from_step, status == "completed")
        first_run = description.raw_description.workflow_execution_info.first_run_id
        recorded = await recorded_results(
            self._client, source_id, first_run or description.run_id, cutoff
        )
        source = recorded.input
        if source is None:
            raise ApiError(
                409, "rerun_unavailable", f"the history of '{source_id}' is not readable"
            )
        version = (
            source.definition_version
            if body.version == "same"
            else (None if body.version == "latest" else int(body.version))
        )
        stored = self.runnable(source.definition.key, principal, version)
        if body.from_step is not None and not _names_a_step(
            stored.definition, body.from_step, records
        ):
            raise ApiError(
                422,
                "unknown_step",
                f"'{body.from_step}' is not a step of workflow '{stored.workflow_id}' "
                f"v{stored.version} (give a step id or a path such as each[2].fetch)",
                "$.from_step",
            )
        reuse = inherited(source_id, source, records, cutoff) | recorded.results
        input_vars = body.input_vars if body.input_vars is not None else source.input_vars
        run = await self.start(
            stored.workflow_id,
            input_vars,
            principal,
            version=stored.version,
            rerun={"rerun_of": source_id, "reuse": reuse},
        )
        logger.info(
            "rerun of %s as %s: %d results offered for reuse",
            source_id,
            run.execution_id,
            len(reuse),
        )
        return run

    async def _check_same_request(self, execution_id: str, digest: str, key: str) -> str:
        description = await self._client.get_workflow_handle(execution_id).describe()
        if await description.memo_value("request_hash", default=None) != digest:
            raise ApiError(
                409,
                "idempotency_conflict",
                f"Idempotency-Key '{key}' was already used with a different request body",
            )
        return description.run_id

    async def wait(
        self,
        run: RunPublic,
        timeout: float,
        principal: Principal,
        request: StatusRequest | None = None,
    ) -> ExecutionPublic | None:
        """Wait for the run to finish; None on timeout."""
        handle = self._client.get_workflow_handle(run.execution_id, result_type=ExecutionState)
        try:
            await asyncio.wait_for(handle.result(), timeout)
        except WorkflowFailureError:
            pass
        except TimeoutError:
            return None
        return await self.get(run.execution_id, principal, request)

    # -- inspect ----------------------------------------------------------------------------

    async def describe(
        self, execution_id: str, principal: Principal
    ) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
        handle = self._client.get_workflow_handle(execution_id, result_type=ExecutionState)
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise self.not_found(execution_id) from None
            raise
        if (
            description.workflow_type != WORKFLOW_TYPE
            or description.task_queue != self._settings.temporal_task_queue
        ):
            # Another deployment's (or another program's) execution: not ours to show or touch.
            raise self.not_found(execution_id)
        if not principal.sees(description.typed_search_attributes.get(SA_DEFINITION_ID)):
            raise self.not_found(execution_id)
        return handle, description

    @staticmethod
    def not_found(execution_id: str) -> ApiError:
        return ApiError(404, "execution_not_found", f"no execution '{execution_id}'")

    async def get(
        self, execution_id: str, principal: Principal, request: StatusRequest | None = None
    ) -> ExecutionPublic:
        """The status, large values summarised unless ``request`` asks for them (status.py)."""
        request = request or StatusRequest(max_bytes=self._settings.api_status_max_bytes)
        handle, description = await self.describe(execution_id, principal)
        t_status, _ = temporal_status(description.status)
        # A finished run's answer never changes: kept, so polling it replays nothing again.
        closed = t_status not in ("RUNNING", "CONTINUED_AS_NEW")
        cacheable = closed and request.variables == "summary"
        if cacheable and (kept := self._closed.get(execution_id, description.run_id)):
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
        if state is not None:
            refuse_too_large(state, execution_id, request)
        answer = await self._public(execution_id, handle, description, state)
        if cacheable and answer.live:
            self._closed.put(execution_id, description.run_id, answer)
        return answer

    async def _public(
        self,
        execution_id: str,
        handle: WorkflowHandle[Any, Any],
        description: WorkflowExecutionDescription,
        state: ExecutionView | None,
    ) -> ExecutionPublic:
        t_status, status = temporal_status(description.status)
        attributes = description.typed_search_attributes
        started_by = attributes.get(SA_STARTED_BY)
        if state is not None:
            data = state.model_dump(exclude={"variables_bytes"})
            data.update(temporal_status=t_status, live=True, started_by=started_by)
            if data.get("usage") is None:  # workers of earlier versions said null for zero
                data["usage"] = Usage().for_run()
            if t_status not in ("RUNNING", "CONTINUED_AS_NEW") and state.status == "running":
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
                    error=await self._closed_by_temporal(handle, t_status),
                    steps=_closed_steps(state.steps, t_status),
                )
            data["links"] = self._links(execution_id, state.run_id)
            return ExecutionPublic(**data)
        # No worker answered: report what Temporal itself knows.
        error = None
        if status == "terminated":
            error = await self._closed_by_temporal(handle, t_status)
        elif status == "failed":
            error = ExecutionError(type=t_status.title(), message=f"execution {t_status.lower()}")
        return ExecutionPublic(
            execution_id=execution_id,
            run_id=description.run_id,
            workflow_id=attributes.get(SA_DEFINITION_ID),
            definition_version=attributes.get(SA_DEFINITION_VERSION),
            started_by=started_by,
            status=status,  # type: ignore[arg-type]
            temporal_status=t_status,
            started_at=description.start_time,
            ended_at=description.close_time,
            error=error,
            live=False,
            links=self._links(execution_id, description.run_id),
        )

    async def _closed_by_temporal(
        self, handle: WorkflowHandle[Any, Any], t_status: str
    ) -> ExecutionError:
        """Why Temporal closed a run our code never saw end: terminate (its reason) or timeout."""
        return await closed_by_temporal(handle, t_status)

    async def list(
        self,
        principal: Principal,
        workflow_id: str | None = None,
        status: str | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> ExecutionListPublic:
        """One page of executions through Temporal visibility, within the key's scope."""
        # This deployment's executions: its workflow type on its task queue.
        clauses = [
            f"WorkflowType = '{WORKFLOW_TYPE}'",
            f"TaskQueue = {_quote(self._settings.temporal_task_queue)}",
        ]
        if workflow_id is not None:
            if not principal.sees(workflow_id):
                return ExecutionListPublic(executions=[], next_page_token=None)
            clauses.append(f"{SA_DEFINITION_ID.name} = {_quote(workflow_id)}")
        scope = principal.scope_ids()
        if scope is not None:
            clauses.append(f"{SA_DEFINITION_ID.name} IN ({', '.join(_quote(w) for w in scope)})")
        if status is not None:
            # Temporal's own status is the truth for what is running or was closed by it (a
            # terminated run never updates its WorkflowStatus attribute); ours for the rest.
            if status == "running":
                clauses.append("ExecutionStatus = 'Running'")
            elif status == "terminated":
                clauses.append("ExecutionStatus IN ('Terminated', 'TimedOut')")
            else:
                clauses.append("ExecutionStatus NOT IN ('Running', 'Terminated', 'TimedOut')")
                clauses.append(f"{SA_STATUS.name} = {_quote(status)}")
        # One row per execution: earlier runs of a continued-as-new execution are left out.
        clauses.append("ExecutionStatus != 'ContinuedAsNew'")
        token = self._page_tokens.decode(page_token)
        iterator = self._client.list_workflows(
            " AND ".join(clauses), page_size=page_size, next_page_token=token
        )
        try:
            await iterator.fetch_next_page()
        except RPCError as err:
            # A token we did not issue makes Temporal answer INVALID_ARGUMENT or INTERNAL.
            unreachable = err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
            if token is None or unreachable:
                raise
            raise ApiError(
                422, "invalid_page_token", "page_token is not one this API issued", "$.page_token"
            ) from None
        next_token = iterator.next_page_token
        latest: dict[str, WorkflowExecution] = {}
        for execution in iterator.current_page or []:
            latest.setdefault(execution.id, execution)  # newest first: a reset's latest run
        return ExecutionListPublic(
            executions=[self._summary(e) for e in latest.values()],
            next_page_token=self._page_tokens.encode(next_token) if next_token else None,
        )

    def _summary(self, execution: WorkflowExecution) -> ExecutionSummary:
        attributes = execution.typed_search_attributes
        t_status, status = temporal_status(execution.status)
        recorded = attributes.get(SA_STATUS)
        if status != "terminated" and recorded and recorded != "running":
            status = recorded
        return ExecutionSummary(
            execution_id=execution.id,
            run_id=execution.run_id,
            workflow_id=attributes.get(SA_DEFINITION_ID),
            definition_version=attributes.get(SA_DEFINITION_VERSION),
            status=status,  # type: ignore[arg-type]
            temporal_status=t_status,
            started_by=attributes.get(SA_STARTED_BY),
            started_at=execution.start_time,
            ended_at=execution.close_time,
            usage=_spend(attributes.get(SA_COST_USD), attributes.get(SA_TOKENS)),
            links=self._links(execution.id, execution.run_id),
        )

    # -- control ----------------------------------------------------------------------------

    async def cancel(self, execution_id: str, reason: str, principal: Principal) -> AcceptedPublic:
        handle, description = await self.describe(execution_id, principal)
        _require(principal, Action.CONTROL, "cancel executions")
        self._require_running(execution_id, description)
        request = CancelRequest(reason=reason, requested_by=principal.name)
        # The signal records who asked and why; Temporal's own cancellation then closes the
        # run as Canceled in the UI. The workflow handles either arriving first, so a signal
        # Temporal refuses (the run is at its signal limit) does not stop the cancel.
        try:
            await handle.signal(CANCEL_SIGNAL, request)
        except RPCError as err:
            if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise
            logger.warning("cancel signal to %s refused (%s); cancelling anyway", execution_id, err)
        try:
            await handle.cancel(reason=reason)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        return AcceptedPublic(execution_id=execution_id, status="cancelling")

    async def signal(
        self, execution_id: str, name: str, payload: Any, principal: Principal
    ) -> AcceptedPublic:
        handle, description = await self.describe(execution_id, principal)
        _require(principal, Action.CONTROL, "signal executions")
        self._require_running(execution_id, description)
        if self._signal_limiter is not None:
            wait = self._signal_limiter.check(principal.name)
            if wait > 0:
                raise ApiError(
                    429,
                    "signal_rate_limited",
                    f"too many signals from key '{principal.name}' (API_SIGNAL_RATE_PER_MINUTE="
                    f"{self._settings.api_signal_rate_per_minute:g}); retry after {wait:.1f}s",
                    headers={"Retry-After": retry_after_header(wait)},
                )
        state = await query_view(handle, SIGNAL_CHECK)
        limit = self._settings.signal_buffer_max
        if state is not None and state.buffered_signals.get(name, 0) >= limit:
            raise ApiError(
                429,
                "signal_buffer_full",
                f"execution '{execution_id}' already holds {limit} unread '{name}' signals "
                f"(SIGNAL_BUFFER_MAX); it reads them only in a wait_for_signal step",
                headers={"Retry-After": "10"},
            )
        if state is not None and state.waiting_for == name and state.waiting_payload_schema:
            await self._check_payload(state.waiting_payload_schema, payload, name)
        try:
            await handle.signal(name, payload)
        except RPCError as err:
            if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
                raise
            # Temporal's own per-execution limits (history.maximumSignalsPerExecution).
            raise ApiError(
                429,
                "signal_refused",
                f"Temporal refused the signal to '{execution_id}': {err.message}; cancel still "
                "works",
            ) from None
        warnings = []
        if state is not None and state.waiting_for != name:
            awaited = (
                f"waits for '{state.waiting_for}'"
                if state.waiting_for
                else "is not waiting for a signal now"
            )
            warnings.append(
                {
                    "code": "not_waiting",
                    "message": f"delivered and buffered, but execution '{execution_id}' "
                    f"{awaited}; a later wait_for_signal step on '{name}' will read it",
                }
            )
        return AcceptedPublic(
            execution_id=execution_id, status="delivered", signal=name, errors=warnings
        )

    @staticmethod
    async def _check_payload(schema: dict[str, Any], payload: Any, name: str) -> None:
        """A payload the awaiting step's `payload_schema` refuses is never sent: 422 naming
        every problem, and the run keeps waiting for a good one."""
        problems = await value_problems_async(schema, payload, "$")
        raise_problems(
            [
                {
                    "code": "invalid_payload" if problem.code == VIOLATION else problem.code,
                    "message": f"the '{name}' payload does not fit the step's payload_schema: "
                    f"{problem.message}",
                    "path": problem.path,
                }
                for problem in problems
            ]
        )

    def _require_running(
        self, execution_id: str, description: WorkflowExecutionDescription
    ) -> None:
        t_status, status = temporal_status(description.status)
        if t_status != "RUNNING":
            raise ApiError(
                409,
                "execution_not_running",
                f"execution '{execution_id}' has already finished ({status}); nothing changed",
            )

    async def read_log(self, execution_id: str, principal: Principal) -> dict[str, Any]:
        try:
            document = await self._logs.aread(execution_id)
        except InvalidExecutionId:
            raise self.not_found(execution_id) from None
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


def _spend(cost: float | None, tokens: int | None) -> dict[str, Any] | None:
    if cost is None and tokens is None:
        return None
    return {"cost_usd": cost, "total_tokens": tokens}


def _names_a_step(definition: WorkflowDefinition, name: str, records: list[dict[str, Any]]) -> bool:
    """A step id of the definition (nested lists too), or a path the source ran."""
    if any(name == record.get("path") for record in records):
        return True
    work = list(definition.steps)
    while work:
        step = work.pop()
        if step.id == name:
            return True
        for scope in kind_of(step).scopes(step):
            work.extend(scope.steps)
    return False


def _require(principal: Principal, action: Action, what: str) -> None:
    if not principal.can(action):
        raise ApiError(403, "forbidden", f"role '{principal.role}' cannot {what}")


def _quote(value: str) -> str:
    """A visibility-query string literal (ids and statuses are validated slugs already)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def page_token_secret(settings: Settings) -> bytes:
    """What every API process of one deployment shares: its keys and where it points."""
    parts = [settings.temporal_namespace, settings.temporal_task_queue]
    if settings.api_keys is not None:
        parts.append(settings.api_keys.get_secret_value())
    if settings.api_keys_file is not None:
        try:
            parts.append(settings.api_keys_file.read_text(encoding="utf-8"))
        except OSError:
            parts.append(str(settings.api_keys_file))
    return "\x1f".join(parts).encode()


class PageTokens:
    """Temporal's page tokens, signed, so a forged one is refused at once.

    Unsigned, a token Temporal cannot read costs ~10 s of retried calls before it fails.
    The key is derived from the configured API keys, so every API process agrees on it.
    """

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.sha256(b"wfe-page-token\x1f" + secret).digest()

    def encode(self, token: bytes) -> str:
        mac = hmac.new(self._key, token, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + token).decode()

    def decode(self, text: str | None) -> bytes | None:
        if not text:
            return None
        try:
            raw = base64.urlsafe_b64decode(text.encode())
        except (binascii.Error, ValueError):
            raw = b""
        mac, token = raw[:16], raw[16:]
        expected = hmac.new(self._key, token, hashlib.sha256).digest()[:16]
        if not token or not hmac.compare_digest(mac, expected):
            raise ApiError(
                422, "invalid_page_token", "page_token is not one this API issued", "$.page_token"
            )
        return token
