"""RunEnding: how a run ends, and when it must.

The steps run in a task of their own; the run waits for that task, for a `cancel` signal, for
Temporal's own cancellation and for the execution's deadline, whichever comes first, then
cancels what still runs and decides the outcome here: completed, failed (a step's failure, the
deadline, or a bug of ours, never retried forever), cancelled, or continued as new.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import versions
    from workflows.deadline import Deadline
    from workflows.definition import WorkflowDefinition
    from workflows.errors import FailureType, StepFailed
    from workflows.failures import engine_error
    from workflows.interpreter import patches
    from workflows.messages import (
        SA_STATUS,
        CancelRequest,
        ExecutionError,
        ExecutionLimits,
        ExecutionStatus,
        StepRecord,
    )


# How long a run stopped by the `cancel` signal waits for Temporal's own cancel (the API sends
# both, one right after the other).
TEMPORAL_CANCEL_GRACE_SECONDS = 10


def failed(error: ExecutionError) -> StepFailed:
    """The failure that ends a list of steps (and, out of the top list, the run)."""
    return StepFailed(error.message, error.type, step_id=error.step_id)


class RunEnding:
    def __init__(
        self, definition: WorkflowDefinition, limits: ExecutionLimits | None, started: datetime
    ) -> None:
        self._definition = definition
        self._limits = limits
        self._started = started
        self.deadline = Deadline(self.timeout_seconds(), started)
        self.status: ExecutionStatus = "running"
        self.error: ExecutionError | None = None
        self.cancel: CancelRequest | None = None  # what the `cancel` signal said
        self.stopping = False  # the steps task is being cancelled
        # The outcome is decided before the final log write; until that write is done (and
        # the run closes), the status query still answers "running", matching Temporal.
        self.closed = False
        self.ended_at: datetime | None = None

    def timeout_seconds(self) -> float | None:
        if self._limits is not None:
            return self._limits.timeout_seconds
        return self._definition.timeout_seconds

    @property
    def lean(self) -> bool:
        """The run saves the actions Temporal makes redundant (the ``fewer-actions`` marker):
        its deadline timer only when needed, the final WorkflowStatus only when cancelled."""
        return self.deadline.lazy

    @lean.setter
    def lean(self, value: bool) -> None:
        self.deadline.lazy = value
        self.deadline.armed = not value

    async def wait_for(self, task: asyncio.Task[None]) -> None:
        """Wait for the steps or a cancel; TimeoutError at the deadline once its timer is
        armed (workflows/deadline.py says when that is)."""

        def over() -> bool:
            return task.done() or self.cancel is not None

        while not over():
            if self.deadline.armed:
                await workflow.wait_condition(
                    over, timeout=self.time_left(), timeout_summary="execution deadline"
                )
            else:
                await workflow.wait_condition(lambda: over() or self.deadline.armed)

    async def await_temporal_cancel(self, native_cancel: bool) -> bool:
        """A run stopped by the `cancel` signal waits a moment for Temporal's own cancel,
        which the API sends right after the signal, so Temporal closes it as Canceled (it
        closed at once, as Failed, when the cancel came after it had closed: a busy API).
        True if Temporal's cancel arrived. Older runs closed at once."""
        if (
            self.status != "cancelled"
            or native_cancel
            or self.cancel is None
            or not versions.patched_since_settled(patches.CANCEL_AWAITS_TEMPORAL)
        ):
            return native_cancel
        try:
            await workflow.wait_condition(
                lambda: False,
                timeout=timedelta(seconds=TEMPORAL_CANCEL_GRACE_SECONDS),
                timeout_summary="Temporal's cancel, after the cancel signal",
            )
        except TimeoutError:
            return False  # only the signal came (Temporal refused or nobody sent its cancel)
        except asyncio.CancelledError:
            return True
        return False

    def publish_status(self) -> None:
        """The final WorkflowStatus search attribute, where Temporal's own status is not enough:
        a run stopped by the `cancel` signal closes as Failed there (older runs wrote every
        status)."""
        if not self.lean or self.status == "cancelled":
            workflow.upsert_search_attributes([SA_STATUS.value_set(self.status)])

    def time_left(self) -> timedelta | None:
        return self.deadline.left()

    def decide(
        self,
        task: asyncio.Task[None] | None,
        timed_out: bool,
        native_cancel: bool,
        current: StepRecord | None,
    ) -> bool:
        """Set the status (and error) from how the steps task ended; True when the steps
        ended cleanly (the run completed, or stopped at a step boundary to continue as new)."""
        at = current.step_id if current else None
        if task is None:
            self.status = "cancelled"
        elif timed_out:
            self.status = "failed"
            self.error = ExecutionError(
                type=FailureType.WORKFLOW_TIMEOUT,
                message=f"execution exceeded its timeout of {self.timeout_seconds():g}s"
                + ("" if self._definition.timeout_seconds else " (EXECUTION_TIMEOUT_SECONDS)")
                + (f" during step '{at}'" if at else ""),
                step_id=at,
            )
        elif native_cancel or self.cancel is not None:
            self.status = "cancelled"
            reason = (self.cancel.reason if self.cancel else None) or "cancelled by request"
            self.error = ExecutionError(type=FailureType.CANCELLED, message=reason, step_id=at)
        elif (err := task.exception()) is not None:
            if not isinstance(err, StepFailed):
                if not versions.patched(patches.ENGINE_ERRORS_FAIL_RUN):
                    raise err  # older runs: fail the workflow task
                # A bug of ours must not leave the run retrying its workflow task forever.
                err = failed(engine_error(err, current))
            self.status = "failed"
            self.error = ExecutionError(
                type=err.failure_type, message=str(err), step_id=err.step_id
            )
        else:
            return True
        return False

    def result_or_raise(self, native_cancel: bool) -> None:
        """After the final log write: raise what closes the run as failed or cancelled."""
        if self.status == "completed":
            return
        if self.status == "cancelled" and native_cancel:
            raise asyncio.CancelledError(self.error.message if self.error else "cancelled")
        assert self.error is not None
        raise ApplicationError(self.error.message, type=self.error.type, non_retryable=True)

    def log_line(self, execution_id: str, version: Any) -> None:
        """One line in the worker's log per finished run (workflow.logger skips replays, so
        it is written once), with execution_id in JSON mode like every line about a run."""
        took = ((self.ended_at or workflow.now()) - self._started).total_seconds()
        reason = f": {self.error.type}: {self.error.message}" if self.error else ""
        workflow.logger.info(
            "execution %s %s (workflow %s v%s) in %.2fs%s",
            execution_id,
            self.status,
            self._definition.id,
            version,
            took,
            reason,
        )
