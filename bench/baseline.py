"""The baseline: what a careful engineer writes by hand instead of using the engine.

A Temporal workflow that sends N HTTP requests one after the other, each an activity with the
same options the engine derives from its defaults (30 s start-to-close, 3 attempts), through
an activity built once per worker around one shared ``httpx.AsyncClient`` (a new client per
call would cost ~20 ms of TLS set-up). No definition to interpret, no status bookkeeping, no
execution log, no SSRF guard, no secrets: the gap between the two is what the engine costs.

``activity="engine"`` sends the engine's own ``HTTPRequest`` to the engine's
``send_http_request`` instead (SSRF guard, secret slots, heartbeats, redaction), which splits
the engine's extra cost into its HTTP activity and the rest (interpreter, log).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import httpx

    from workflows.messages import SEND_HTTP_REQUEST, HTTPRequest, HTTPResult
    from workflows.steps import idempotency_key

BASELINE_WORKFLOW = "BenchBaseline"
PLAIN_HTTP = "bench_send_request"

# The engine's defaults for an activity step (workflows/definition.py, workflows/steps.py).
ACTIVITY_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(
        maximum_attempts=3,
        initial_interval=timedelta(seconds=1),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
    ),
}


class BaselineStep(BaseModel):
    id: str
    method: str
    url: str
    json_body: Any = None


class BaselineInput(BaseModel):
    steps: list[BaselineStep]
    activity: Literal["plain", "engine"] = "plain"


class PlainRequest(BaseModel):
    method: str
    url: str
    json_body: Any = None
    idempotency_key: str


class PlainHTTP:
    """The hand-written HTTP activity: one shared client, errors classified for retries."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @activity.defn(name=PLAIN_HTTP)
    async def send_request(self, request: PlainRequest) -> dict[str, Any]:
        try:
            response = await self._client.request(
                request.method,
                request.url,
                json=request.json_body,
                headers={"Idempotency-Key": request.idempotency_key},
            )
        except httpx.TransportError as err:
            raise ApplicationError(f"{request.method} {request.url}: {err}") from err
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise ApplicationError(f"{request.url} answered {response.status_code}")
        if response.status_code >= 400:
            raise ApplicationError(
                f"{request.url} answered {response.status_code}", non_retryable=True
            )
        return {
            "status": response.status_code,
            "headers": dict(response.headers),
            "json": response.json() if response.content else None,
        }


@workflow.defn(name=BASELINE_WORKFLOW)
class BaselineWorkflow:
    """Send each step's request in order; return the number of steps done."""

    @workflow.run
    async def run(self, input: BaselineInput) -> int:
        execution_id = workflow.info().workflow_id
        for seq, step in enumerate(input.steps):
            key = idempotency_key(execution_id, step.id, seq)
            if input.activity == "plain":
                await workflow.execute_activity(
                    PLAIN_HTTP,
                    PlainRequest(
                        method=step.method,
                        url=step.url,
                        json_body=step.json_body,
                        idempotency_key=key,
                    ),
                    result_type=dict,
                    summary=step.id,
                    **ACTIVITY_OPTIONS,
                )
            else:
                await workflow.execute_activity(
                    SEND_HTTP_REQUEST,
                    HTTPRequest(
                        execution_id=execution_id,
                        step_id=step.id,
                        method=step.method,
                        url=step.url,
                        json_body=step.json_body,
                        has_json=step.json_body is not None,
                        idempotency_key=key,
                    ),
                    result_type=HTTPResult,
                    summary=step.id,
                    heartbeat_timeout=timedelta(seconds=10),
                    **ACTIVITY_OPTIONS,
                )
        return len(input.steps)


FAN_OUT_WORKFLOW = "BenchFanOut"


class FanOutInput(BaseModel):
    urls: list[str]
    concurrency: int


@workflow.defn(name=FAN_OUT_WORKFLOW)
class FanOutWorkflow:
    """The hand-written parallel / map: every URL an activity, at most ``concurrency`` at once
    (what a careful engineer writes instead of a `parallel` or `foreach` step)."""

    @workflow.run
    async def run(self, input: FanOutInput) -> int:
        execution_id = workflow.info().workflow_id
        gate = asyncio.Semaphore(input.concurrency)

        async def one(seq: int, url: str) -> None:
            async with gate:
                await workflow.execute_activity(
                    PLAIN_HTTP,
                    PlainRequest(
                        method="GET",
                        url=url,
                        idempotency_key=idempotency_key(execution_id, "f", seq),
                    ),
                    result_type=dict,
                    summary=f"item {seq}",
                    **ACTIVITY_OPTIONS,
                )

        await asyncio.gather(*(one(seq, url) for seq, url in enumerate(input.urls)))
        return len(input.urls)


FAN_OUT_CHILDREN_WORKFLOW = "BenchFanOutChildren"


class FanOutChildrenInput(BaseModel):
    urls: list[str]
    concurrency: int
    per_child: int


@workflow.defn(name=FAN_OUT_CHILDREN_WORKFLOW)
class FanOutChildrenWorkflow:
    """The hand-written map over a long list: equal chunks of ``per_child`` items, each a child
    workflow (bench's FanOutWorkflow) started at once, the concurrency split among them; the
    parent keeps only each child's count (what Step Functions' distributed map does)."""

    @workflow.run
    async def run(self, input: FanOutChildrenInput) -> int:
        chunks = max(1, -(-len(input.urls) // input.per_child))
        size = -(-len(input.urls) // chunks)
        each = max(1, input.concurrency // chunks)
        execution_id = workflow.info().workflow_id
        counts = await asyncio.gather(
            *(
                workflow.execute_child_workflow(
                    FAN_OUT_WORKFLOW,
                    FanOutInput(urls=input.urls[start : start + size], concurrency=each),
                    id=f"{execution_id}-{start}",
                    result_type=int,
                )
                for start in range(0, len(input.urls), size)
            )
        )
        return sum(counts)
