"""Building blocks of step models: field types, the fields every step shares, retry policies.

A step kind's model (in its own module) is built from these. ``on_error`` lives here because
every kind that can fail routes its failures the same way (README "Writing workflows": on_error).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

END = "end"
"""The ``next`` target that finishes a list of steps (the execution, at the top level)."""

ENGINE_VARIABLES = frozenset({"execution", "secrets"})
"""Names every step can read: the execution's facts and the secrets (activities only)."""
LAST_ERROR = "last_error"
"""Bound by a failure that ``on_error`` routed on: ``{"step_id", "type", "message"}``."""
RESERVED_VARIABLES = ENGINE_VARIABLES | {LAST_ERROR}
"""Names no step may bind."""

StepId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    Field(description="Step id: letters, digits, '_' or '-', at most 64 characters."),
]
StepTarget = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    Field(
        description='A step id to jump to, or "end" to finish successfully.',
        # Roles the console's graph reads from the exported schema (docs/console.md).
        json_schema_extra={"x-role": "step-id"},
    ),
]
VariableName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"),
    Field(description="A variable name: an identifier (letters, digits, '_')."),
]
WorkflowId = Annotated[
    int | Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
    Field(description="A slug ([A-Za-z0-9_-]{1,64}) or a positive integer."),
]


class Model(BaseModel):
    """Every definition model: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RetryPolicySpec(Model):
    """How often an activity step is attempted; maps to Temporal's RetryPolicy."""

    max_attempts: int | None = Field(
        None, ge=1, le=100, description="Total attempts including the first (1 = no retry)."
    )
    initial_interval_seconds: float | None = Field(None, gt=0, le=3600)
    backoff_coefficient: float | None = Field(None, ge=1, le=10)
    max_interval_seconds: float | None = Field(None, gt=0, le=86400)
    non_retryable_errors: list[str] | None = Field(
        None, description="Failure types (e.g. HTTPStatusError) that are never retried."
    )


class StepDefaults(Model):
    """Defaults applied to every activity step that does not set its own."""

    timeout_seconds: float | None = Field(None, gt=0, le=86400)
    total_timeout_seconds: float | None = Field(None, gt=0, le=366 * 86400)
    retry: RetryPolicySpec | None = None


class OnErrorNext(Model):
    next: StepTarget


class OnErrorRoute(Model):
    """One rule of an ``on_error`` list: the first rule whose ``errors`` name the failure's
    type (or that has no ``errors``) decides what happens."""

    model_config = ConfigDict(json_schema_extra={"x-label": "on {errors|any error}"})

    errors: list[str] | None = Field(
        None,
        min_length=1,
        description="Failure types this rule matches (docs/errors.md); absent: any failure.",
    )
    then: StepTarget = Field(
        description='A step id of the same list, "continue" or "fail".',
        json_schema_extra={"x-keywords": ["continue", "fail"]},
    )


OnError = Literal["fail", "continue"] | OnErrorNext | list[OnErrorRoute]
ON_ERROR_SHAPE = (
    'on_error must be "fail", "continue", {"next": "<step id>"} or a list of '
    '{"errors": [<failure type>, ...], "then": "<step id>" | "continue" | "fail"}'
)


class StepBase(Model):
    """Fields of every step."""

    if TYPE_CHECKING:
        type: str  # each kind's model declares its own Literal

    id: StepId
    name: str | None = Field(None, max_length=200, description="Shown in logs and the UI.")
    description: str | None = Field(None, max_length=2000)

    @property
    def label(self) -> str:
        """Human name for logs and the Temporal UI."""
        return self.name or self.id


class FlowMixin(Model):
    """``next`` and ``on_error``: where the flow goes after the step, and after its failure."""

    next: StepTarget | None = Field(
        None,
        description='Step to run next (default: the following step); "end" finishes.',
        json_schema_extra={"x-flow": "next"},
    )
    on_error: OnError = Field(
        "fail",
        description='"fail" (default) ends the execution, "continue" goes on to the next step, '
        '{"next": id} jumps to a handler step; a list of {"errors", "then"} rules routes by '
        "failure type (first match wins).",
        json_schema_extra={"x-flow": "error"},
    )

    @field_validator("on_error", mode="before")
    @classmethod
    def _on_error_shape(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("fail", "continue"):
            raise ValueError(ON_ERROR_SHAPE)
        if not isinstance(value, str | dict | list | OnErrorNext):
            raise ValueError(ON_ERROR_SHAPE)
        return value


class OutputMixin(Model):
    output: VariableName | None = Field(None, description="Variable the result is bound to.")


class ActivityMixin(OutputMixin):
    """Fields of a step that runs as a Temporal activity: its timeouts and retry policy."""

    timeout_seconds: float | None = Field(
        None, gt=0, le=86400, description="Start-to-close timeout of one attempt."
    )
    total_timeout_seconds: float | None = Field(
        None,
        gt=0,
        le=366 * 86400,
        description="Schedule-to-close: all attempts and the waits between them.",
    )
    retry: RetryPolicySpec | None = None


ENGINE_DEFAULT_TIMEOUT_SECONDS = 30.0
ENGINE_DEFAULT_RETRY = RetryPolicySpec(
    max_attempts=3,
    initial_interval_seconds=1.0,
    backoff_coefficient=2.0,
    max_interval_seconds=30.0,
    non_retryable_errors=[],
)


def effective_timeout(step: ActivityMixin, defaults: StepDefaults) -> timedelta:
    seconds = step.timeout_seconds or defaults.timeout_seconds or ENGINE_DEFAULT_TIMEOUT_SECONDS
    return timedelta(seconds=seconds)


def effective_total_timeout(step: ActivityMixin, defaults: StepDefaults) -> timedelta | None:
    seconds = step.total_timeout_seconds or defaults.total_timeout_seconds
    return timedelta(seconds=seconds) if seconds else None


def effective_retry(step: ActivityMixin, defaults: StepDefaults) -> RetryPolicySpec:
    """Step settings over definition defaults over engine defaults, field by field."""
    if step.retry is None and defaults.retry is None:
        return ENGINE_DEFAULT_RETRY  # frozen: shared as it is
    merged: dict[str, Any] = ENGINE_DEFAULT_RETRY.model_dump()
    for layer in (defaults.retry, step.retry):
        if layer is not None:
            merged.update(layer.model_dump(exclude_none=True))
    return RetryPolicySpec(**merged)


def require_unique(names: list[str], what: str) -> None:
    """ValueError naming the ``what`` (e.g. "tool names") that appear more than once."""
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{what} must be unique; repeated: {', '.join(twice)}")
