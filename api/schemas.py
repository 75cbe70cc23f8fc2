"""Request and response models of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.shared import ExecutionError, ExecutionStatus, StepRecord


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
    execution_id: str = Field(description="The Temporal workflow ID.")
    run_id: str = Field(description="The Temporal run ID.")
    status: ExecutionStatus
    errors: list[ErrorItem] = Field(default_factory=list)
    workflow_id: str | int | None = None
    definition_version: int | None = None
    links: dict[str, str] = Field(default_factory=dict)


class ExecutionPublic(BaseModel):
    execution_id: str
    run_id: str
    workflow_id: str | int | None = None
    workflow_name: str | None = None
    definition_version: int | None = None
    status: ExecutionStatus
    temporal_status: str = Field(description="Temporal's own status (RUNNING, COMPLETED, ...).")
    current_step: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    steps_total: int = 0
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: ExecutionError | None = None
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


class HealthPublic(BaseModel):
    status: Literal["ok", "ready", "unavailable"]
    temporal: str | None = None
