"""The workflow definition format as pydantic v2 models (README "Writing workflows").

The document: metadata, input schema, defaults, limits, triggers and the steps. Each step type
is a kind of its own (``workflows/kinds/<type>.py``: its model, checks and execution); the
``Step`` union comes from the registry in :mod:`workflows.kinds`. Shape errors come from
pydantic; everything that needs the whole document (ids, jumps, reachability, CEL, variable
references) is checked in :mod:`workflows.validation`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, model_validator

from workflows.kinds import Step
from workflows.kinds.common import Model, StepDefaults, WorkflowId

_CRON_FIELD = r"[0-9A-Za-z*/,?#LW-]+"
_CRON_MACRO = r"@(yearly|annually|monthly|weekly|daily|hourly|every \S+)"
_CRON = re.compile(rf"^({_CRON_MACRO}|{_CRON_FIELD}(\s+{_CRON_FIELD}){{4,6}})$")


class ScheduleTrigger(Model):
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


WebhookScheme = Literal["hmac", "standard-webhooks", "github", "stripe", "slack"]
WEBHOOK_SCHEMES: tuple[str, ...] = get_args(WebhookScheme)


class WebhookTrigger(Model):
    """Exposes POST /api/hooks/{workflow_id}, verified as its sender signs (docs/webhooks.md)."""

    type: Literal["webhook"]
    scheme: WebhookScheme = Field(
        "hmac",
        description='How deliveries are signed: "hmac" (X-Webhook-* headers), '
        '"standard-webhooks", "github", "stripe" or "slack" (docs/webhooks.md).',
    )
    secret: str = Field(
        "default",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Name of the secret in WEBHOOK_SECRETS that signs the requests.",
    )
    filter: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="CEL over `headers` (lower-case names) and `body`: false answers 200 "
        '{"ignored": true} and starts nothing.',
    )
    input_vars: dict[str, Any] | None = Field(
        None,
        description="Templates over {body} (the JSON or form payload) and {headers} (lower-case "
        "names); default: the body itself.",
    )


Trigger = Annotated[ScheduleTrigger | WebhookTrigger, Field(discriminator="type")]


class RunLimits(Model):
    """Bounds a definition sets for its own runs; they can only lower the operator's."""

    max_steps: int | None = Field(
        None, ge=1, description="Steps one execution may take (EXECUTION_MAX_STEPS at most)."
    )
    max_value_bytes: int | None = Field(
        None,
        ge=1024,
        description="Size of a value computed in the run, as JSON (MAX_VALUE_BYTES at most).",
    )


class Budget(Model):
    """What a run may spend on AI calls: no call starts once it is spent."""

    max_cost_usd: float | None = Field(None, gt=0, description="USD, as OpenRouter reports it.")
    max_tokens: int | None = Field(None, ge=1, description="Total tokens of every AI call.")
    on_exceeded: Literal["fail", "pause"] = Field(
        "fail",
        description='"fail": the step fails BudgetExceeded; "pause": the run waits for a '
        '`budget` signal with new limits ({"max_cost_usd", "max_tokens"}) or {"approve": false}.',
    )

    @model_validator(mode="after")
    def _a_limit(self) -> Budget:
        if self.max_cost_usd is None and self.max_tokens is None:
            raise ValueError("give max_cost_usd and/or max_tokens")
        return self


class Concurrency(Model):
    """At most ``limit`` runs per key execute at once; the others wait their turn in start
    order (docs/flow-control.md)."""

    key: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description='Template over the inputs (e.g. "{customer_id}"), resolved when a run '
        "starts; default: the workflow id (one queue for the whole workflow).",
    )
    limit: int = Field(ge=1, le=1000, description="Runs per key that execute at once.")


class Debounce(Model):
    """Starts with the same key within ``seconds`` of the last one collapse into one run,
    started when the window closes, with the last start's inputs (docs/flow-control.md)."""

    key: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Template over the inputs; default: the workflow id.",
    )
    seconds: float = Field(gt=0, le=86400, description="The quiet window after the last start.")


class WorkflowDefinition(Model):
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
    budget: Budget | None = None
    concurrency: Concurrency | None = None
    debounce: Debounce | None = None
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


def definition_json_schema() -> dict[str, Any]:
    """The JSON Schema of a definition document (docs/workflow-definition.schema.json; the
    console's graph reads the kinds' roles from it: their ``x-role``/``x-flow``/``x-label``)."""
    schema = WorkflowDefinition.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "workflow-definition.schema.json"
    return schema
