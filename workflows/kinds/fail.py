"""`fail`: ends its list of steps (the execution, at the top level) as failed, with a
templated message; in a nested list the holding step fails with it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from workflows.errors import FailureType, StepFailed
from workflows.kinds.base import Edge, StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import StepBase
from workflows.templating import VariableSubstitutor


class FailStep(StepBase):
    """Ends the execution as failed with a (templated) message."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(json_schema_extra={"x-label": "{message}"})

    type: Literal["fail"]
    message: str = Field(min_length=1, max_length=10_000)


@register
class FailKind(StepKind[FailStep]):
    type = "fail"
    model = FailStep
    routes_errors = False

    def templated(self, step: FailStep) -> dict[str, Any]:
        return {"message": step.message}

    def successors(self, step: FailStep) -> list[Edge]:
        return []

    async def execute(self, step: FailStep, run: StepRun) -> StepOutcome:
        message = VariableSubstitutor(run.variables, strict_indexes=run.strict_indexes).render_text(
            step.message
        )
        raise StepFailed(message, FailureType.WORKFLOW_FAILED)
