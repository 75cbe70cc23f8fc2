"""Listing executions: one page of Temporal visibility, within the key's scope, filtered by
workflow and status."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from activities.runtime.settings import Settings
from api.server.auth import Principal
from api.server.executions.common import Links, temporal_status
from api.server.executions.page_tokens import PageTokens, invalid_page_token
from api.server.schemas import ExecutionListPublic, ExecutionSummary
from workflows.messages import (
    SA_COST_USD,
    SA_DEFINITION_ID,
    SA_DEFINITION_VERSION,
    SA_STARTED_BY,
    SA_STATUS,
    SA_TOKENS,
    TEST_ID_PREFIX,
    WORKFLOW_TYPE,
)


def visibility_query(
    task_queue: str,
    principal: Principal,
    workflow_id: str | None,
    status: str | None,
    include_tests: bool = False,
) -> str:
    """This deployment's executions (its workflow type on its task queue) in the key's scope;
    one row per execution (earlier runs of a continued-as-new execution are left out). Test
    runs (docs/testing.md) only when asked for."""
    clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'", f"TaskQueue = {_quote(task_queue)}"]
    if not include_tests:
        clauses.append(f"WorkflowId NOT STARTS_WITH {_quote(TEST_ID_PREFIX)}")
    if workflow_id is not None:
        clauses.append(f"{SA_DEFINITION_ID.name} = {_quote(workflow_id)}")
    scope = principal.scope_ids()
    if scope is not None:
        clauses.append(f"{SA_DEFINITION_ID.name} IN ({', '.join(_quote(w) for w in scope)})")
    if status is not None:
        clauses.append(_STATUS_CLAUSES[status])
    clauses.append("ExecutionStatus != 'ContinuedAsNew'")
    return " AND ".join(clauses)


# Temporal's own status is the truth, but for one case: a run stopped by the `cancel` signal
# closes as Failed there, and its WorkflowStatus attribute says `cancelled` (runs before the
# engine's `fewer-actions` marker also wrote `completed` and `failed`, which agree with
# Temporal's status).
_CANCELLED_ATTRIBUTE = f"{SA_STATUS.name} = 'cancelled'"
_STATUS_CLAUSES = {
    "running": "ExecutionStatus = 'Running'",
    "terminated": "ExecutionStatus IN ('Terminated', 'TimedOut')",
    "completed": "ExecutionStatus = 'Completed'",
    "failed": f"ExecutionStatus = 'Failed' AND ({SA_STATUS.name} IS NULL OR "
    f"{SA_STATUS.name} != 'cancelled')",
    "cancelled": f"(ExecutionStatus = 'Canceled' OR (ExecutionStatus = 'Failed' AND "
    f"{_CANCELLED_ATTRIBUTE}))",
}


@dataclass
class Lister:
    """Lists executions in the key's scope, a page at a time."""

    client: Client
    settings: Settings
    page_tokens: PageTokens

    @cached_property
    def links(self) -> Links:
        return Links(self.settings)

    async def list(
        self,
        principal: Principal,
        workflow_id: str | None = None,
        status: str | None = None,
        page_size: int = 50,
        page_token: str | None = None,
        include_tests: bool = False,
    ) -> ExecutionListPublic:
        """One page of executions through Temporal visibility, within the key's scope."""
        if workflow_id is not None and not principal.sees(workflow_id):
            return ExecutionListPublic(executions=[], next_page_token=None)
        query = visibility_query(
            self.settings.temporal_task_queue, principal, workflow_id, status, include_tests
        )
        token = self.page_tokens.decode(page_token)
        iterator = self.client.list_workflows(query, page_size=page_size, next_page_token=token)
        try:
            await iterator.fetch_next_page()
        except RPCError as err:
            # A token we did not issue makes Temporal answer INVALID_ARGUMENT or INTERNAL.
            unreachable = err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
            if token is None or unreachable:
                raise
            raise invalid_page_token() from None
        next_token = iterator.next_page_token
        latest: dict[str, WorkflowExecution] = {}
        for execution in iterator.current_page or []:
            latest.setdefault(execution.id, execution)  # newest first: a reset's latest run
        return ExecutionListPublic(
            executions=[self._summary(e) for e in latest.values()],
            next_page_token=self.page_tokens.encode(next_token) if next_token else None,
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
            links=self.links.of(execution.id, execution.run_id),
        )


def _spend(cost: float | None, tokens: int | None) -> dict[str, Any] | None:
    if cost is None and tokens is None:
        return None
    return {"cost_usd": cost, "total_tokens": tokens}


def _quote(value: str) -> str:
    """A visibility-query string literal (ids and statuses are validated slugs already)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
