"""Deadline: the execution's time limit, and when its timer has to run.

Every run has a deadline (the definition's ``timeout_seconds`` or EXECUTION_TIMEOUT_SECONDS).
Runs used to start a timer for it at once; a timer is a billable action on Temporal Cloud, and
most runs end long before their deadline. Runs since the ``fewer-actions`` marker start it only
when something they wait for could outlast the time left (``expect``): a signal, a delay, a
child workflow or a log write that could wait that long. An activity never could: it is
scheduled with a schedule-to-close timeout of at most the time left (``bounded``), so Temporal
itself ends it at the deadline, and the step then waits for the timer that ends the run as the
deadline always did (``overran``), with the same error. Runs without the marker arm the timer
at once, as before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType


class Deadline:
    def __init__(self, limit_seconds: float | None, started: datetime) -> None:
        self._limit = limit_seconds
        self._started = started
        self.lazy = False  # set from the version marker when the run starts
        self.armed = True  # the run's wait for its steps has a timer for the deadline

    def left(self) -> timedelta | None:
        """The time left (at least a millisecond), or None: no deadline."""
        if self._limit is None:
            return None
        left = timedelta(seconds=self._limit) - (workflow.now() - self._started)
        return max(left, timedelta(milliseconds=1))

    def expect(self, longest: timedelta | None) -> None:
        """Something the run waits for may take ``longest`` (None: no bound): arm the timer if
        that could reach the deadline."""
        if self.armed:
            return
        left = self.left()
        if left is not None and (longest is None or longest >= left):
            self.armed = True

    def bounded(self, options: dict[str, Any]) -> dict[str, Any]:
        """Activity options whose schedule-to-close timeout ends at the deadline at the latest
        (unchanged while the timer is armed: it ends the activity then)."""
        left = None if self.armed else self.left()
        if left is None:
            return options
        total = options.get("schedule_to_close_timeout")
        if total is not None and total < left:
            return options
        return {**options, "schedule_to_close_timeout": left}

    def overran(self, err: ActivityError) -> bool:
        """The activity was ended by Temporal at the deadline (see ``bounded``)."""
        cause = err.cause
        return (
            not self.armed
            and isinstance(cause, TimeoutError)
            and cause.type == TimeoutType.SCHEDULE_TO_CLOSE
            and self._limit is not None
            and workflow.now() - self._started >= timedelta(seconds=self._limit)
        )

    async def wait_for_the_end(self) -> None:
        """Arm the timer and wait until the run's end cancels this step (it fires at once)."""
        self.armed = True
        await workflow.wait_condition(lambda: False)
