"""`wait_for_signal`: waits for a named signal (buffered until read); its payload binds to
``output``. A timeout fails the step with type ``SignalTimeout``."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field
from temporalio import workflow

from workflows.errors import FailureType, StepFailure
from workflows.kinds.base import StepKind, StepOutcome, StepRun, Waiting, register
from workflows.kinds.common import FlowMixin, StepBase, VariableName


class WaitForSignalStep(StepBase, FlowMixin):
    """Waits for a named signal; its payload binds to ``output``."""

    type: Literal["wait_for_signal"]
    signal: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    timeout_seconds: float | None = Field(
        None, gt=0, le=366 * 86400, description="Give up waiting after this long."
    )
    output: VariableName | None = None


@register
class WaitForSignalKind(StepKind[WaitForSignalStep]):
    type = "wait_for_signal"
    model = WaitForSignalStep
    waits = True

    async def execute(self, step: WaitForSignalStep, run: StepRun) -> StepOutcome:
        queue = run.signal_queue(step.signal)
        timeout = timedelta(seconds=step.timeout_seconds) if step.timeout_seconds else None
        until = workflow.now() + timeout if timeout is not None else None
        run.set_waiting(Waiting(step.signal, until))
        try:
            await workflow.wait_condition(
                lambda: bool(queue), timeout=timeout, timeout_summary=f"{step.signal} timeout"
            )
        except TimeoutError:
            run.set_waiting(None)
            raise StepFailure(
                f"no '{step.signal}' signal arrived within {step.timeout_seconds:g}s",
                FailureType.SIGNAL_TIMEOUT,
            ) from None
        except BaseException:
            # Not the details: a run torn down from the worker's cache runs this outside
            # the workflow's event loop, where no workflow call is allowed.
            run.set_waiting(None, quiet=True)
            raise
        run.set_waiting(None)
        payload = run.checked(queue.popleft(), f"signal '{step.signal}' payload")
        outputs = {step.output: payload} if step.output else {}
        return StepOutcome(output_vars=outputs, next_target=step.next)
