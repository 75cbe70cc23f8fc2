"""`delay`: a durable Temporal timer, ``seconds`` (number or template) or ``until``."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ConfigDict, model_validator
from temporalio import workflow

from workflows.errors import FailureType, StepFailed
from workflows.kinds.base import StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import FlowMixin, StepBase
from workflows.templating import VariableSubstitutor

MAX_DELAY_SECONDS = 366 * 86400  # as the definition's own `seconds` allows


class DelayStep(StepBase, FlowMixin):
    """A durable Temporal timer: ``seconds`` (number or template) or ``until`` (ISO 8601)."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(json_schema_extra={"x-label": ["{seconds} s", "until {until}"]})

    type: Literal["delay"]
    seconds: float | str | None = None
    until: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> DelayStep:
        if (self.seconds is None) == (self.until is None):
            raise ValueError("give exactly one of 'seconds' or 'until'")
        if isinstance(self.seconds, int | float) and not 0 <= self.seconds <= MAX_DELAY_SECONDS:
            raise ValueError("seconds must be between 0 and one year")
        return self


@register
class DelayKind(StepKind[DelayStep]):
    type = "delay"
    model = DelayStep
    waits = True

    def templated(self, step: DelayStep) -> dict[str, Any]:
        return {"seconds": step.seconds, "until": step.until}

    async def execute(self, step: DelayStep, run: StepRun) -> StepOutcome:
        seconds = self._seconds(
            step, VariableSubstitutor(run.variables, strict_indexes=run.strict_indexes)
        )
        if seconds > 0:
            run.expect_wait(timedelta(seconds=seconds))
            await run.sleep(timedelta(seconds=seconds), step.label)
        return StepOutcome(next_target=step.next)

    def _seconds(self, step: DelayStep, substitutor: VariableSubstitutor) -> float:
        if step.seconds is not None:
            raw = substitutor.render(step.seconds)
            try:
                seconds = float(raw)
            except (TypeError, ValueError, OverflowError):
                raise StepFailed(
                    f"delay seconds must be a number, got {raw!r}", FailureType.INVALID_REQUEST
                ) from None
            if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DELAY_SECONDS:
                raise StepFailed(
                    f"delay seconds must be between 0 and {MAX_DELAY_SECONDS:g} (one year), "
                    f"got {raw!r}",
                    FailureType.INVALID_REQUEST,
                )
            return seconds
        text = substitutor.render_text(step.until or "")
        try:
            until = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise StepFailed(
                f"delay until must be an ISO 8601 timestamp, got {text!r}",
                FailureType.INVALID_REQUEST,
            ) from None
        if until.tzinfo is None:
            raise StepFailed(
                f"delay until {text!r} has no time zone; add Z or an offset",
                FailureType.INVALID_REQUEST,
            )
        seconds = (until - workflow.now()).total_seconds()
        if seconds > MAX_DELAY_SECONDS:
            raise StepFailed(
                f"delay until {text!r} is more than a year away", FailureType.INVALID_REQUEST
            )
        return seconds
