"""How failures become what users see: ``(type, message)`` of a step or a run.

Temporal's errors (activity, child workflow, timeout) and the engine's own are mapped here,
in one place: the failure type is a :class:`~workflows.errors.FailureType` name (what
``on_error`` rules route on), the message says what happened in words.
"""

from __future__ import annotations

from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    TimeoutType,
)
from temporalio.exceptions import (
    TimeoutError as TemporalTimeoutError,
)

from workflows.errors import FailureType, StepFailed
from workflows.messages import ExecutionError, StepRecord

# What each Temporal timeout means for a step (a step timeout fails the step, as the README says).
TIMEOUT_MEANINGS = {
    TimeoutType.START_TO_CLOSE: "an attempt ran past the step's timeout_seconds",
    TimeoutType.HEARTBEAT: "the worker running it stopped responding",
    TimeoutType.SCHEDULE_TO_CLOSE: "the step's total time ran out",
    TimeoutType.SCHEDULE_TO_START: "no worker picked it up in time",
}


def engine_error(err: BaseException, current: StepRecord | None) -> ExecutionError:
    """An unexpected error inside the interpreter, as the run's failure."""
    where = f" in step '{current.step_id}'" if current else ""
    return ExecutionError(
        type=FailureType.ENGINE_ERROR,
        message=f"internal error{where}: {type(err).__name__}: {err}"[:2000]
        + " (a bug in the engine: please report it with this execution's history)",
        step_id=current.step_id if current else None,
    )


def describe_failure(err: BaseException, step_id: str) -> ExecutionError:
    """Turn an activity or step error into the (type, message) users see."""
    if isinstance(err, StepFailed):
        return ExecutionError(type=err.failure_type, message=str(err), step_id=step_id)
    cause = err.cause if isinstance(err, ActivityError | ChildWorkflowError) else err
    if isinstance(cause, ApplicationError):
        message = cause.message
        if isinstance(err, ActivityError) and err.retry_state is not None:
            state = err.retry_state.name.lower().replace("_", " ")
            if "maximum attempts" in state:
                message += " (gave up: maximum attempts reached)"
        return ExecutionError(type=cause.type or "ActivityError", message=message, step_id=step_id)
    if isinstance(cause, TemporalTimeoutError):
        kind = TIMEOUT_MEANINGS.get(cause.type, "timed out") if cause.type else "timed out"
        return ExecutionError(
            type=FailureType.STEP_TIMEOUT,
            message=f"step '{step_id}' timed out: {kind}",
            step_id=step_id,
        )
    return ExecutionError(type=type(cause).__name__, message=str(cause), step_id=step_id)
