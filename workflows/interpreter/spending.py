"""Spending: the run's AI spend as a kind sees it (the budget, and what the Temporal UI shows).

Bookkeeping and the gate are :class:`budget.RunBudget`'s; this adds what only the workflow can
do: ask for the reservations marker, wait for a `budget` signal when a `pause` budget is spent,
and keep the search attributes WorkflowCostUsd / WorkflowTokens current.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import versions
    from workflows.definition import WorkflowDefinition
    from workflows.interpreter import patches
    from workflows.interpreter.budget import RunBudget
    from workflows.kinds.base import Waiting
    from workflows.messages import (
        BUDGET_PAYLOAD_SCHEMA,
        BUDGET_SIGNAL,
        SA_COST_USD,
        SA_TOKENS,
        CarriedState,
    )
    from workflows.steps import WorkflowStepProcessor
    from workflows.usage import Usage


class Spending:
    def __init__(
        self,
        definition: WorkflowDefinition,
        carried: CarriedState | None,
        processor: WorkflowStepProcessor,
        publishes: bool,
    ) -> None:
        """``publishes`` False for a foreach share (its parent publishes the run's spend)."""
        budget = definition.budget
        self.budget = RunBudget(
            limits=(
                dict(carried.budget)
                if carried and carried.budget is not None
                else budget.model_dump(include={"max_cost_usd", "max_tokens"})
                if budget is not None
                else {}
            ),
            on_exceeded=budget.on_exceeded if budget is not None else "fail",
            usage=Usage.of(carried.usage if carried else None),
        )
        self.usage = self.budget.usage
        self._published = (self.usage.cost_usd, self.usage.total_tokens)
        self._processor = processor
        self._publishes = publishes

    def account(self, usage: dict[str, Any] | None, calls: int = 1, path: str = "") -> None:
        """Add an AI call's usage to the run's totals (releasing its reservation)."""
        self.budget.account(usage, calls, path)

    async def gate(self, path: str) -> None:
        """Before an AI call: within budget (what is spent and what calls in flight reserve),
        go on; over it, fail or wait for new limits."""
        if self.budget.limits and not self.budget.reserving:
            self.budget.reserving = versions.patched(patches.BUDGET_RESERVATIONS)
        await self.budget.gate(path, self._ask_for_more)

    async def _ask_for_more(self, path: str) -> Any:
        """A paused budget: wait for the `budget` signal, showing what it should carry."""
        queue = self._processor.signals.setdefault(BUDGET_SIGNAL, deque())
        self._processor.set_waiting(path, Waiting(BUDGET_SIGNAL, None, BUDGET_PAYLOAD_SCHEMA))
        try:
            await workflow.wait_condition(lambda: bool(queue))
        finally:
            self._processor.set_waiting(path, None, quiet=True)
        self._processor.set_waiting(path, None)
        return queue.popleft()

    def release(self, path: str) -> None:
        self.budget.release(path)

    def check_after(self) -> None:
        """After an AI call: a `fail` budget fails the step that spent past it."""
        self.budget.check_after()

    def publish(self) -> None:
        """Keep WorkflowCostUsd / WorkflowTokens current (searchable in the Temporal UI)."""
        current = (self.usage.cost_usd, self.usage.total_tokens)
        if current == self._published or not self._publishes:
            return
        if not versions.patched(patches.USAGE_ATTRIBUTES):
            return
        self._published = current
        workflow.upsert_search_attributes(
            [SA_COST_USD.value_set(current[0]), SA_TOKENS.value_set(current[1])]
        )
