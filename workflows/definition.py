"""The workflow definition format (SPEC §2) as pydantic v2 models.

Steps are a discriminated union on ``type``. Shape errors come from pydantic; everything that
needs the whole document (ids, jumps, reachability, CEL, variable references) is checked in
:mod:`workflows.validation`, which turns both kinds into :class:`~workflows.errors.Problem`
lists with JSON paths.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

END = "end"
"""The ``next`` target that finishes an execution successfully."""

RESERVED_VARIABLES = frozenset({"execution", "secrets"})

StepId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    Field(description="Step id: letters, digits, '_' or '-', at most 64 characters."),
]
StepTarget = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    Field(description='A step id to jump to, or "end" to finish successfully.'),
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class RetryPolicySpec(_Model):
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


class StepDefaults(_Model):
    """Defaults applied to every activity step that does not set its own."""

    timeout_seconds: float | None = Field(None, gt=0, le=86400)
    total_timeout_seconds: float | None = Field(None, gt=0, le=366 * 86400)
    retry: RetryPolicySpec | None = None


class OnErrorNext(_Model):
    next: StepTarget


OnError = Literal["fail", "continue"] | OnErrorNext


class _StepBase(_Model):
    id: StepId
    name: str | None = Field(None, max_length=200, description="Shown in logs and the UI.")
    description: str | None = Field(None, max_length=2000)

    @property
    def label(self) -> str:
        """Human name for logs and the Temporal UI."""
        return self.name or self.id


class _FlowMixin(_Model):
    next: StepTarget | None = Field(
        None, description='Step to run next (default: the following step); "end" finishes.'
    )
    on_error: OnError = Field(
        "fail",
        description='"fail" (default) ends the execution, "continue" goes on to the next step, '
        '{"next": id} jumps to a handler step.',
    )

    @field_validator("on_error", mode="before")
    @classmethod
    def _on_error_shape(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("fail", "continue"):
            raise ValueError('on_error must be "fail", "continue" or {"next": "<step id>"}')
        if not isinstance(value, str | dict | OnErrorNext):
            raise ValueError('on_error must be "fail", "continue" or {"next": "<step id>"}')
        return value


class _ActivityMixin(_Model):
    output: VariableName | None = Field(None, description="Variable the result is bound to.")
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


class ChatMessage(_Model):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)


class JsonObjectFormat(_Model):
    type: Literal["json_object"]


class JsonSchemaFormat(_Model):
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema", description="JSON Schema the answer obeys.")
    name: str = Field("response", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    strict: bool = True


ResponseFormat = Annotated[JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


class AIStep(_StepBase, _FlowMixin, _ActivityMixin):
    """A chat completion through OpenRouter (or any OpenAI-compatible server)."""

    type: Literal["ai"]
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    prompt: str | None = Field(
        None, max_length=1_000_000, description="Shorthand: one user message."
    )
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    response_format: ResponseFormat | None = None

    @model_validator(mode="after")
    def _one_of_messages_or_prompt(self) -> AIStep:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of 'messages' or 'prompt'")
        return self


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class HTTPStep(_StepBase, _FlowMixin, _ActivityMixin):
    """An HTTP request; 2xx (or ``expect_status``) succeeds, 5xx/429 are retried."""

    type: Literal["http"]
    method: HttpMethod = "GET"
    url: str = Field(min_length=1, max_length=8192)
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json", description="JSON request body (templated).")
    body: str | None = Field(None, description="Raw request body (templated).")
    expect_status: int | list[int] | None = Field(
        None, description="Accepted status code(s); default any 2xx."
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_body(self) -> HTTPStep:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give at most one of 'json' or 'body'")
        return self

    def accepts(self, status: int) -> bool:
        if self.expect_status is None:
            return 200 <= status < 300
        if isinstance(self.expect_status, int):
            return status == self.expect_status
        return status in self.expect_status


class SetStep(_StepBase, _FlowMixin):
    """Binds variables; runs in the workflow (pure). ``values`` are templates, ``compute``
    CEL expressions (``{"i": "i + 1"}``); all are evaluated before any is bound."""

    type: Literal["set"]
    values: dict[VariableName, Any] = Field(default_factory=dict)
    compute: dict[VariableName, str] = Field(
        default_factory=dict, description="Variable name -> CEL expression over the context."
    )

    @model_validator(mode="after")
    def _something_to_set(self) -> SetStep:
        if not self.values and not self.compute:
            raise ValueError("give 'values' (templates) and/or 'compute' (CEL expressions)")
        both = sorted(set(self.values) & set(self.compute))
        if both:
            raise ValueError(f"{', '.join(both)} set in both 'values' and 'compute'")
        return self


class Branch(_Model):
    when: str = Field(min_length=1, max_length=4096, description="CEL expression (bool).")
    next: StepTarget


class ConditionStep(_StepBase):
    """Takes the first branch whose CEL ``when`` is true, else ``default``."""

    type: Literal["condition"]
    branches: list[Branch] = Field(min_length=1)
    default: StepTarget | None = Field(
        None, description="Target when no branch matches (default: the following step)."
    )


class DelayStep(_StepBase, _FlowMixin):
    """A durable Temporal timer: ``seconds`` (number or template) or ``until`` (ISO 8601)."""

    type: Literal["delay"]
    seconds: float | str | None = None
    until: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> DelayStep:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("give exactly one of 'seconds' or 'until'")
        if isinstance(self.seconds, int | float) and not 0 <= self.seconds <= 366 * 86400:
            raise ValueError("seconds must be between 0 and one year")
        return self


class WaitForSignalStep(_StepBase, _FlowMixin):
    """Waits for a named signal; its payload binds to ``output``."""

    type: Literal["wait_for_signal"]
    signal: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    timeout_seconds: float | None = Field(
        None, gt=0, le=366 * 86400, description="Give up waiting after this long."
    )
    output: VariableName | None = None


class FailStep(_StepBase):
    """Ends the execution as failed with a (templated) message."""

    type: Literal["fail"]
    message: str = Field(min_length=1, max_length=10_000)


Step = Annotated[
    AIStep | HTTPStep | SetStep | ConditionStep | DelayStep | WaitForSignalStep | FailStep,
    Field(discriminator="type"),
]
ActivityStep = AIStep | HTTPStep
STEP_TYPES = ("ai", "http", "set", "condition", "delay", "wait_for_signal", "fail")


_CRON_FIELD = r"[0-9A-Za-z*/,?#LW-]+"
_CRON_MACRO = r"@(yearly|annually|monthly|weekly|daily|hourly|every \S+)"
_CRON = re.compile(rf"^({_CRON_MACRO}|{_CRON_FIELD}(\s+{_CRON_FIELD}){{4,6}})$")


class ScheduleTrigger(_Model):
    """Starts runs on a Temporal Schedule (visible, pausable and triggerable in the UI)."""

    type: Literal["schedule"]
    id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Default: schedule-<position>."
    )
    cron: str | None = Field(None, max_length=200, description='e.g. "0 9 * * MON-FRI".')
    interval_seconds: float | None = Field(None, ge=1, le=366 * 86400)
    time_zone: str | None = Field(None, max_length=64, description="IANA name; default UTC.")
    input_vars: dict[str, Any] = Field(default_factory=dict)
    paused: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of 'cron' or 'interval_seconds'")
        if self.cron is not None and not _CRON.match(self.cron.strip()):
            raise ValueError(
                f"cron {self.cron!r} is not a cron expression (5 fields, e.g. '*/15 * * * *')"
            )
        return self


class WebhookTrigger(_Model):
    """Exposes POST /api/hooks/{workflow_id}, verified by an HMAC-SHA256 signature."""

    type: Literal["webhook"]
    secret: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Name of the secret in WEBHOOK_SECRETS that signs the requests.",
    )
    input_vars: dict[str, Any] | None = Field(
        None,
        description="Templates over {body} (the JSON payload); default: the body itself.",
    )


Trigger = Annotated[ScheduleTrigger | WebhookTrigger, Field(discriminator="type")]


class RunLimits(_Model):
    """Bounds a definition sets for its own runs; they can only lower the operator's."""

    max_steps: int | None = Field(
        None, ge=1, description="Steps one execution may take (EXECUTION_MAX_STEPS at most)."
    )
    max_value_bytes: int | None = Field(
        None,
        ge=1024,
        description="Size of a value computed in the run, as JSON (MAX_VALUE_BYTES at most).",
    )


class WorkflowDefinition(_Model):
    """A workflow document: metadata, input schema, defaults and the ordered steps."""

    id: WorkflowId
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=5000)
    inputs: dict[str, Any] | None = Field(
        None, description="JSON Schema that input_vars must satisfy before a run starts."
    )
    timeout_seconds: float | None = Field(
        None, gt=0, le=366 * 86400, description="Whole-execution limit, enforced by the workflow."
    )
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    limits: RunLimits | None = None
    steps: list[Step] = Field(min_length=1)
    triggers: list[Trigger] = Field(default_factory=list)

    @property
    def key(self) -> str:
        """The id as text (ids may be integers)."""
        return str(self.id)

    @property
    def title(self) -> str:
        return self.name or self.key

    def step_index(self) -> dict[str, int]:
        return {step.id: index for index, step in enumerate(self.steps)}

    def schedules(self) -> list[tuple[str, ScheduleTrigger]]:
        """(trigger id, trigger) for every schedule trigger."""
        return [
            (t.id or f"schedule-{i}", t)
            for i, t in enumerate(self.triggers)
            if isinstance(t, ScheduleTrigger)
        ]

    def webhook(self) -> WebhookTrigger | None:
        return next((t for t in self.triggers if isinstance(t, WebhookTrigger)), None)


ENGINE_DEFAULT_TIMEOUT_SECONDS = 30.0
ENGINE_DEFAULT_RETRY = RetryPolicySpec(
    max_attempts=3,
    initial_interval_seconds=1.0,
    backoff_coefficient=2.0,
    max_interval_seconds=30.0,
    non_retryable_errors=[],
)


def effective_timeout(step: ActivityStep, defaults: StepDefaults) -> timedelta:
    seconds = step.timeout_seconds or defaults.timeout_seconds or ENGINE_DEFAULT_TIMEOUT_SECONDS
    return timedelta(seconds=seconds)


def effective_total_timeout(step: ActivityStep, defaults: StepDefaults) -> timedelta | None:
    seconds = step.total_timeout_seconds or defaults.total_timeout_seconds
    return timedelta(seconds=seconds) if seconds else None


def effective_retry(step: ActivityStep, defaults: StepDefaults) -> RetryPolicySpec:
    """Step settings over definition defaults over engine defaults, field by field."""
    merged: dict[str, Any] = ENGINE_DEFAULT_RETRY.model_dump()
    for layer in (defaults.retry, step.retry):
        if layer is not None:
            merged.update(layer.model_dump(exclude_none=True))
    return RetryPolicySpec(**merged)
