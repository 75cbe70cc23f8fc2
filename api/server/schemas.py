"""Request and response models of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from workflows.messages import ExecutionError, ExecutionStatus, ExecutionView


class ErrorItem(BaseModel):
    code: str = Field(examples=["workflow_not_found"])
    message: str = Field(examples=["no workflow named 'ticket-triage'"])
    path: str | None = Field(None, examples=["$.input_vars.ticket"])


class ErrorResponse(BaseModel):
    errors: list[ErrorItem]


class RunCreate(BaseModel):
    """Start an execution of a saved workflow."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"workflow_id": "hello-offline", "input_vars": {"name": "Ada"}}]
        },
    )

    workflow_id: str | int = Field(description="The definition's id.")
    input_vars: dict[str, Any] = Field(
        default_factory=dict, description="Variables the run starts with."
    )


class RunPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "execution_id": "6f1c0a6e-2b0c-4a47-9d8e-0f4d7f9b1a2c",
                    "run_id": "01a2121a-c77e-7af5-a104-b9cca584c9ba",
                    "status": "running",
                    "errors": [],
                    "workflow_id": "hello-offline",
                    "definition_version": 3,
                }
            ]
        }
    )

    execution_id: str = Field(description="The Temporal workflow ID.")
    run_id: str = Field(
        description="The Temporal run ID (never null; empty for a debounced start, whose run "
        "has not started yet)."
    )
    status: ExecutionStatus
    errors: list[ErrorItem] = Field(default_factory=list)
    workflow_id: str | int | None = None
    definition_version: int | None = None
    starts_at: datetime | None = Field(
        None,
        description="A debounced start (the definition's `debounce`): when the run starts, "
        "unless another start with its key comes first; the execution is found from then.",
    )
    outputs: dict[str, Any] | None = Field(
        None, description="With ?wait=true, the finished execution's variables."
    )
    error: ExecutionError | None = Field(None, description="With ?wait=true, why it failed.")
    rerun_of: str | None = Field(None, description="For a rerun: the source execution.")
    links: dict[str, str] = Field(default_factory=dict)


# The status answer documents more than the worker's model says of these fields.
_STATUS_DESCRIPTIONS = {
    "current_step": "The first step in flight (its path).",
    "usage": "The run's AI totals: prompt_tokens, completion_tokens, total_tokens, cost_usd, "
    "ai_calls (null before any AI call).",
    "steps": "The most recent steps (up to 200); a large `output_vars` value is a summary, as "
    "in `outputs` (the log has them in full).",
    "outputs": 'The variables. A value over 4 KiB is a summary, `{"$summary": {"type", "bytes", '
    '"length", "keys" (the first ten), "preview" (a string\'s first 100 characters)}}`, unless '
    "asked for with `?include=variables`; an object's small fields are kept around its large "
    "ones.",
    "summarised": "The variables of `outputs` holding a summary (empty: every value in full).",
    "waiting_for": "The signal the run waits for now (e.g. `approval`), else null.",
}


def _describe(schema: dict[str, Any]) -> None:
    """The API's descriptions over the worker's, in the OpenAPI document."""
    for name, description in _STATUS_DESCRIPTIONS.items():
        schema["properties"][name]["description"] = description


class ExecutionPublic(ExecutionView):
    """An execution's status: what its worker reports (values summarised) or, when no worker
    answers (`live` false), what Temporal knows."""

    # The worker's status view (workflows/messages.py), then the API's own fields.
    model_config = ConfigDict(extra="ignore", json_schema_extra=_describe)

    # A worker always knows these; Temporal alone (no worker answered) may not.
    workflow_id: str | int | None = None  # type: ignore[assignment]
    started_at: datetime | None = None  # type: ignore[assignment]
    # The worker's: for its parent, and for the query's own refusal (api/server/status.py).
    descendants_left: SkipJsonSchema[int | None] = Field(None, exclude=True)
    variables_bytes: SkipJsonSchema[int | None] = Field(None, exclude=True)

    started_by: str | None = Field(None, description="Name of the API key (or trigger).")
    temporal_status: str = Field(description="Temporal's own status (RUNNING, COMPLETED, ...).")
    live: bool = Field(
        True, description="False when no worker answered and the answer is from Temporal alone."
    )
    links: dict[str, str] = Field(default_factory=dict)


class CancelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("cancelled through the API", max_length=500)


class AcceptedPublic(BaseModel):
    execution_id: str
    status: Literal["cancelling", "delivered"]
    signal: str | None = None
    errors: list[ErrorItem] = Field(
        default_factory=list,
        description="Warnings only (a 2xx answer): e.g. `not_waiting` when no step waits for "
        "this signal now (it is buffered all the same).",
    )


class HealthPublic(BaseModel):
    status: Literal["ok", "ready", "unavailable"]
    temporal: str | None = None


class ReadyPublic(HealthPublic):
    """/readyz: Temporal's reachability and whether a worker polls the task queue."""

    task_queue: str | None = Field(None, description="TEMPORAL_TASK_QUEUE of this API.")
    worker: str | None = Field(
        None,
        description="`ok` when a worker polled the task queue within "
        "API_WORKER_POLL_WINDOW_SECONDS, else why not (the cause of a 503); null when Temporal "
        "is unreachable (not checked).",
    )


class ExecutionSummary(BaseModel):
    execution_id: str
    run_id: str
    workflow_id: str | None = None
    definition_version: int | None = None
    status: ExecutionStatus
    temporal_status: str
    started_by: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    usage: dict[str, Any] | None = Field(
        None,
        description="The run's AI spend as last published (`cost_usd`, `total_tokens`), from "
        "its WorkflowCostUsd / WorkflowTokens search attributes; null before any AI call.",
    )
    links: dict[str, str] = Field(default_factory=dict)


class ExecutionListPublic(BaseModel):
    executions: list[ExecutionSummary]
    next_page_token: str | None = Field(
        None, description="Pass as page_token for the next page; null on the last page."
    )


class WorkflowSummary(BaseModel):
    workflow_id: str
    name: str | None = None
    description: str | None = None
    version: int
    hash: str
    saved_at: datetime
    steps: int
    triggers: list[str] = Field(default_factory=list, description="Trigger types.")


class WorkflowListPublic(BaseModel):
    workflows: list[WorkflowSummary]


class SavedVersion(BaseModel):
    """One saved version of a definition (api/server/store.py)."""

    workflow_id: str
    version: int
    hash: str
    saved_at: datetime


class WorkflowPublic(SavedVersion):
    versions: list[int] = Field(description="Every version number still readable.")
    definition: dict[str, Any]


class WorkflowSaved(SavedVersion):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "workflow_id": "ticket-triage",
                    "version": 4,
                    "hash": "sha256:9f2c...",
                    "created": False,
                    "changed": True,
                    "schedules": ["wfe-ticket-triage-nightly"],
                }
            ]
        }
    )

    created: bool = Field(description="The workflow did not exist before.")
    changed: bool = Field(description="A new version was written (false: same document).")
    schedules: list[str] = Field(default_factory=list, description="Temporal Schedule ids.")
    webhook: str | None = Field(None, description="Path of the webhook trigger, if any.")


class ValidationPublic(BaseModel):
    valid: bool
    errors: list[ErrorItem] = Field(default_factory=list)


class RerunCreate(BaseModel):
    """`POST /api/executions/{id}/rerun`; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    from_step: str | None = Field(
        None,
        description="A step id or path: steps from its last visit on run fresh. Default: the "
        "step that failed or was cancelled in the source.",
    )
    input_vars: dict[str, Any] | None = Field(
        None, description="New inputs (validated against the definition); default the source's."
    )
    version: Literal["same", "latest"] | int = Field(
        "same", description='"same" (the source\'s pinned version), "latest", or a number.'
    )


class CaseResultPublic(BaseModel):
    """One test case's result (docs/testing.md)."""

    name: str
    status: Literal["passed", "failed"]
    problems: list[str] = Field(
        default_factory=list, description="Each way the run differed from the case, in words."
    )
    execution_id: str | None = Field(None, description="The test run (GET /api/executions/...).")
    seconds: float = Field(description="Real time the case took.")


class TestReportPublic(BaseModel):
    """A test file's results: `POST /api/workflows/{id}/test`."""

    passed: int
    failed: int
    cases: list[CaseResultPublic]
