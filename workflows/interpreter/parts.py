"""RunParts: the parts of one run (its identity, variables, step records, log, spend, child
allowance and ending), and what is read off them together: the status the queries answer, the
log's header, and the state a continued run starts from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.interpreter.ending import RunEnding
    from workflows.interpreter.records import StepBook
    from workflows.interpreter.run_tree import ScopeAllowances
    from workflows.interpreter.spending import Spending
    from workflows.messages import (
        SA_DEFINITION_ID,
        SA_STATUS,
        STATUS_STEP_WINDOW,
        CarriedState,
        ExecutionState,
    )
    from workflows.shared import ExecutionInput
    from workflows.steps import WorkflowStepProcessor


@dataclass
class RunParts:
    input: ExecutionInput
    execution_id: str
    run_id: str  # the first run's, across continue-as-new
    started_at: datetime
    runs: int  # this run's number in the execution (continue-as-new)
    context: dict[str, Any]  # the top-level scope's variables
    processor: WorkflowStepProcessor
    book: StepBook
    ending: RunEnding
    spending: Spending
    allowances: ScopeAllowances

    def should_continue_as_new(self) -> bool:
        """At a step boundary: when Temporal suggests it, or after max_steps_per_run steps."""
        if self.book.done_this_run == 0 or self.ending.cancel is not None:
            return False
        limit = self.input.max_steps_per_run
        return workflow.info().is_continue_as_new_suggested() or (
            limit is not None and self.book.done_this_run >= limit
        )

    def continued(self, next_index: int, place_held: bool) -> ExecutionInput:
        """The input of the execution's next run (continue-as-new): what it carries, a held
        concurrency place, a test run's clock and visits."""
        carried = self.carried(next_index)
        if place_held:
            carried.concurrency_held = True
        update: dict[str, Any] = {"carried": carried}
        if self.processor.test is not None:
            update["test"] = self.processor.test.carried()
        return self.input.model_copy(update=update)

    def carried(self, next_index: int) -> CarriedState:
        """What the next run of the execution starts from (same id, same log)."""
        processor = self.processor
        return CarriedState(
            context=self.context,
            next_index=next_index,
            seq=self.book.seq,
            started_at=self.started_at,
            first_run_id=self.run_id,
            steps_done=self.book.done,
            runs=self.runs + 1,
            recent_steps=self.book.recent[-STATUS_STEP_WINDOW:],
            pending_signals={k: list(v) for k, v in processor.signals.items() if v},
            usage=self.spending.usage.for_run(),
            budget=self.spending.budget.limits or None,
            strict_indexes=processor.strict_indexes,
            descendants_left=self.allowances.tree.left,
            cel_conformant=processor.cel_conformant,
        )

    def mark_searchable(self, with_status: bool) -> None:
        """Runs started outside the API (CLI, UI) still get the project's search attributes
        (``with_status``: WorkflowStatus too, as runs before the ``fewer-actions`` marker had)."""
        attributes = workflow.info().typed_search_attributes
        updates = []
        if attributes.get(SA_DEFINITION_ID) is None:
            updates.append(SA_DEFINITION_ID.value_set(self.input.definition.key))
        if with_status and attributes.get(SA_STATUS) is None:
            updates.append(SA_STATUS.value_set("running"))
        if updates:
            workflow.upsert_search_attributes(updates)

    def log_header(self) -> dict[str, Any]:
        """The execution log's header as the run stands (RunLog writes it with its records)."""
        usage = self.spending.usage
        definition = self.input.definition
        return {
            "execution_id": self.execution_id,
            "run_id": self.run_id,
            "workflow_id": definition.id,
            "workflow_name": definition.name,
            "workflow_version": self.input.definition_version,
            "status": self.ending.status,
            "start_time": self.started_at,
            "end_time": self.ending.ended_at,
            "error": self.ending.error,
            "usage": usage.for_run() if usage.ai_calls else None,
        }

    def state(self) -> ExecutionState:
        """The status the queries answer (all values; status_view summarises them)."""
        ending, book, processor = self.ending, self.book, self.processor
        waiting = processor.waiting if not ending.closed else None
        definition = self.input.definition
        return ExecutionState(
            execution_id=self.execution_id,
            run_id=self.run_id,
            workflow_id=definition.id,
            workflow_name=definition.name,
            definition_version=self.input.definition_version,
            status=ending.status if ending.closed else "running",
            current_step=next(iter(book.in_flight), None),
            current_steps=list(book.in_flight),
            started_at=self.started_at,
            ended_at=ending.ended_at,
            steps=list(book.recent) + list(book.in_flight.values()),
            steps_total=book.done,
            outputs={k: v for k, v in self.context.items() if k not in ("execution", "secrets")},
            error=ending.error,
            buffered_signals={k: len(v) for k, v in processor.signals.items() if v},
            rerun_of=self.input.rerun_of,
            usage=self.spending.usage.for_run(),  # zeros, not null, for a run with no AI call
            waiting_for=waiting.signal if waiting else None,
            waiting_until=waiting.until if waiting else None,
            waiting_payload_schema=waiting.payload_schema if waiting else None,
            descendants_left=self.allowances.tree.left,
            concurrency_key=self.concurrency_key(),
        )

    def concurrency_key(self) -> str | None:
        input = self.input
        if input.concurrency is None or input.depth != 0 or input.batch is not None:
            return None
        return input.concurrency.key
