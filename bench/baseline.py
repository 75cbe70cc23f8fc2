"""The baseline: a hand-written Temporal workflow doing what the engine does for `http` steps.

It sends the same :class:`~workflows.shared.HTTPRequest` inputs to the same
``send_http_request`` activity, one after the other, with the activity options the engine
derives from its defaults (30 s start-to-close, 10 s heartbeat timeout, 3 attempts), but
without interpreting a definition, without status bookkeeping and without the execution log.
The gap between the two is therefore the engine's own cost.

With ``local_marker`` set it also runs a no-op local activity where the engine writes its log
(once before the first step, once after each step, once at the end). That variant isolates the
cost of the local-activity mechanism itself from the cost of the log file I/O.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows.shared import SEND_HTTP_REQUEST, HTTPRequest, HTTPResult
    from workflows.steps import idempotency_key

BASELINE_WORKFLOW = "BenchBaseline"
MARK_STEP = "bench_mark_step"

# The engine's defaults for an activity step (workflows/definition.py, workflows/steps.py).
ACTIVITY_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "heartbeat_timeout": timedelta(seconds=10),
    "retry_policy": RetryPolicy(
        maximum_attempts=3,
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
    ),
    "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
}
# The options of the engine's log write, minus its 24-hour retry budget (a no-op never fails).
MARK_OPTIONS: dict[str, Any] = {"start_to_close_timeout": timedelta(seconds=10)}


class BaselineStep(BaseModel):
    id: str
    method: str
    url: str
    json_body: Any = None


class BaselineInput(BaseModel):
    steps: list[BaselineStep]
    local_marker: bool = False


@activity.defn(name=MARK_STEP)
async def mark_step(seq: int) -> None:
    """A local activity that does nothing: stands in for the engine's log write."""


@workflow.defn(name=BASELINE_WORKFLOW)
class BaselineWorkflow:
    """Send each step's request in order; return the number of steps done."""

    @workflow.run
    async def run(self, input: BaselineInput) -> int:
        execution_id = workflow.info().workflow_id
        await self._mark(input, -1)
        for seq, step in enumerate(input.steps):
            request = HTTPRequest(
                execution_id=execution_id,
                step_id=step.id,
                method=step.method,
                url=step.url,
                json_body=step.json_body,
                has_json=step.json_body is not None,
                idempotency_key=idempotency_key(execution_id, step.id, seq),
            )
            await workflow.execute_activity(
                SEND_HTTP_REQUEST,
                request,
                result_type=HTTPResult,
                summary=step.id,
                **ACTIVITY_OPTIONS,
            )
            await self._mark(input, seq)
        await self._mark(input, len(input.steps))
        return len(input.steps)

    @staticmethod
    async def _mark(input: BaselineInput, seq: int) -> None:
        if input.local_marker:
            await workflow.execute_local_activity(MARK_STEP, seq, **MARK_OPTIONS)
