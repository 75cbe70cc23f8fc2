"""StepBook: the run's step records as the status shows them: the steps in flight, a window of
the latest finished ones, and the numbering (``seq``) every record gets when its step starts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.errors import FailureType
    from workflows.interpreter.ending import failed
    from workflows.kinds.common import END, StepBase
    from workflows.messages import (
        STATUS_STEP_WINDOW,
        CarriedState,
        ExecutionError,
        ExecutionLimits,
        StepRecord,
        StepStatus,
    )


class StepBook:
    def __init__(self, carried: CarriedState | None) -> None:
        self.seq = carried.seq if carried else 0  # the next step visit's number
        self.done = carried.steps_done if carried else 0  # in the whole execution
        self.done_this_run = 0  # since the last continue-as-new
        self.recent: list[StepRecord] = list(carried.recent_steps) if carried else []
        self.in_flight: dict[str, StepRecord] = {}  # step path -> its record, in start order

    @property
    def current(self) -> StepRecord | None:
        """The first step in flight (the run's current step)."""
        return next(iter(self.in_flight.values()), None)

    def start(self, step: StepBase, path: str) -> StepRecord:
        record = StepRecord(
            seq=self.seq,
            step_id=step.id,
            name=step.label,
            type=step.type,
            start_time=workflow.now(),
            run_id=workflow.info().run_id,
            path=path,
        )
        self.seq += 1
        self.in_flight[path] = record
        return record

    def finish(self, record: StepRecord, path: str) -> None:
        self.in_flight.pop(path, None)
        self.done += 1
        self.done_this_run += 1
        self._keep(record)

    def adopt(self, records: Sequence[StepRecord], steps_done: int, renumber: bool = True) -> None:
        """Records a foreach share ran in its child workflow (``renumber``: in this run's
        sequence; a share that wrote its own log numbered them in a range set aside)."""
        run_id = workflow.info().run_id
        for record in records:
            if renumber:
                record.seq = self.seq
                record.run_id = run_id
                self.seq += 1
            self._keep(record)
        self.done += steps_done
        self.done_this_run += steps_done

    def set_aside(self, visits: int) -> int:
        """Set aside ``visits`` step numbers (for foreach shares); the first of them."""
        first = self.seq
        self.seq += visits
        return first

    def check_limit(self, limits: ExecutionLimits | None, step: StepBase) -> None:
        """Before a step: the execution may take no more than its limit of steps."""
        if limits is not None and self.done >= limits.max_steps:
            raise failed(
                ExecutionError(
                    type=FailureType.STEP_LIMIT,
                    message=f"the execution took {self.done:,} steps, its limit "
                    "(EXECUTION_MAX_STEPS, or the definition's limits.max_steps); a loop "
                    "that never ends? Add an exit condition or raise the limit",
                    step_id=step.id,
                )
            )

    def started_child(self, path: str, execution_id: str) -> None:
        """A step's child execution is named on its record as soon as it starts."""
        record = self.in_flight.get(path)
        if record is not None:
            record.child_execution_id = execution_id

    def close_in_flight(
        self, status: StepStatus, error: ExecutionError | None, at: datetime
    ) -> list[StepRecord]:
        """The run ends: the steps still in flight end with it (their records, now closed)."""
        closed = list(self.in_flight.values())
        for record in closed:
            record.status = status
            record.end_time = at
            if error is not None:
                record.error = error.message
                record.error_type = error.type
            self.recent.append(record)
        self.in_flight.clear()
        return closed

    def _keep(self, record: StepRecord) -> None:
        self.recent.append(record)
        if len(self.recent) > STATUS_STEP_WINDOW:
            del self.recent[: len(self.recent) - STATUS_STEP_WINDOW]


def succeeded(record: StepRecord, outputs: dict[str, Any], usage: dict[str, Any] | None) -> None:
    record.status = "success"
    record.end_time = workflow.now()
    record.output_vars = outputs
    record.usage = usage


def failed_with(record: StepRecord, error: ExecutionError, usage: dict[str, Any] | None) -> None:
    record.status = "failed"
    record.end_time = workflow.now()
    record.error = error.message
    record.error_type = error.type
    if usage:
        record.usage = usage


class StepPositions:
    """Where a list of steps goes after one of them: its ``next`` (a step id, or "end"), else
    the step after it (-1: the list's end). Positions by id are worked out once per list."""

    def __init__(self) -> None:
        self._by_list: dict[int, dict[str, int]] = {}  # id(list of steps) -> step id -> index

    def after(self, target: str | None, index: int, steps: Sequence[StepBase]) -> int:
        if target == END:
            return -1
        if target is None:
            return index + 1 if index + 1 < len(steps) else -1
        positions = self._by_list.get(id(steps))
        if positions is None:
            positions = self._by_list[id(steps)] = {s.id: i for i, s in enumerate(steps)}
        return positions[target]
