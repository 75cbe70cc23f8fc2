"""`wait_for_signal`: waits for a named signal (buffered until read); its payload binds to
``output``. A timeout fails the step with type ``SignalTimeout``.

``payload_schema`` (a JSON Schema, the rules of a definition's ``inputs``) says what the
payload must be: the API refuses a signal that fails it (422, the run keeps waiting), and the
console builds its signal form from it. The status answer carries it while the step waits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import ConfigDict, Field
from temporalio import workflow

from workflows.errors import FailureType, Problem, StepFailed
from workflows.input_schema import schema_problems
from workflows.kinds.base import StepKind, StepOutcome, StepRun, Waiting, register
from workflows.kinds.common import FlowMixin, StepBase, VariableName
from workflows.value_types import DYN, Type, Typer, of_schema


class WaitForSignalStep(StepBase, FlowMixin):
    """Waits for a named signal; its payload binds to ``output``."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(
        json_schema_extra={"x-label": ['signal "{signal}"', "times out after {timeout_seconds} s"]}
    )

    type: Literal["wait_for_signal"]
    signal: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    timeout_seconds: float | None = Field(
        None, gt=0, le=366 * 86400, description="Give up waiting after this long."
    )
    payload_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema the signal's payload must satisfy (checked by the API)."
    )
    output: VariableName | None = None


@register
class WaitForSignalKind(StepKind[WaitForSignalStep]):
    type = "wait_for_signal"
    model = WaitForSignalStep
    waits = True

    def result_types(self, step: WaitForSignalStep, typer: Typer) -> dict[str, Type]:
        """The payload, as the API checks it against ``payload_schema``."""
        if not step.output:
            return {}
        schema = step.payload_schema
        return {step.output: of_schema(schema) if schema is not None else DYN}

    def problems(self, step: WaitForSignalStep, where: str) -> list[Problem]:
        if step.payload_schema is None:
            return []
        return schema_problems(step.payload_schema, f"{where}.payload_schema")

    async def execute(self, step: WaitForSignalStep, run: StepRun) -> StepOutcome:
        queue = run.signal_queue(step.signal)
        timeout = timedelta(seconds=step.timeout_seconds) if step.timeout_seconds else None
        until = workflow.now() + timeout if timeout is not None else None
        run.set_waiting(Waiting(step.signal, until, step.payload_schema))
        try:
            await run.wait_for_signal(lambda: bool(queue), timeout, step.signal)
        except TimeoutError:
            run.set_waiting(None)
            raise StepFailed(
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
