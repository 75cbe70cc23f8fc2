"""RunServices: what a step's kind may ask of the run it is in (the Scopes the step processor
hands to every StepRun): nested lists and concurrent jobs for the kinds that hold lists, the AI
spend for those that call models, the allowance of child executions for those that start them.
The interpreter walks; this is the narrow door back into it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.interpreter.jobs import Job, Jobs
    from workflows.interpreter.records import StepBook
    from workflows.interpreter.run_log import RunLog
    from workflows.interpreter.run_tree import ScopeAllowances
    from workflows.interpreter.spending import Spending
    from workflows.messages import LogWrite, StepRecord
    from workflows.steps import RunScope


class RunServices:
    def __init__(
        self,
        walk: RunScope,
        book: StepBook,
        log: RunLog,
        spending: Spending,
        allowances: ScopeAllowances,
    ) -> None:
        self.run_scope = walk
        self._book = book
        self._log = log
        self._spending = spending
        self._allowances = allowances
        self.jobs = Jobs()

    # -- lists and jobs (parallel, foreach) --------------------------------------------------

    async def run_concurrently(self, jobs: Sequence[Job], limit: int, fail_fast: bool) -> list[Any]:
        return await self.jobs.run(jobs, limit, fail_fast)

    def adopt(self, records: Sequence[StepRecord], steps_done: int, written: bool = False) -> None:
        """Records a foreach share ran in its child workflow join this run's status and log
        (``written``: the share wrote them to the log, numbered already)."""
        self._book.adopt(records, steps_done, renumber=not written)
        if not written:
            self._log.pending.extend(records)

    def share_log(self, visits: int) -> tuple[LogWrite, int]:
        return self._log.template(), self._book.set_aside(visits)

    # -- AI spend (ai, agent) -----------------------------------------------------------------

    def account(self, usage: dict[str, Any] | None, calls: int = 1, path: str = "") -> None:
        self._spending.account(usage, calls, path)

    async def budget_gate(self, path: str) -> None:
        await self._spending.gate(path)

    def release_budget(self, path: str) -> None:
        self._spending.release(path)

    def check_budget_after(self) -> None:
        self._spending.check_after()

    # -- child executions (sub_workflow, agent workflow tools, foreach shares) ----------------

    def pay_for_child(
        self, variables: Mapping[str, Any], starts_more: bool, ways: int = 1
    ) -> int | None:
        return self._allowances.pay_for_child(variables, starts_more, ways)

    def refund(self, variables: Mapping[str, Any], unused: int | None) -> None:
        self._allowances.refund(variables, unused)

    def started_child(self, path: str, execution_id: str) -> None:
        self._book.started_child(path, execution_id)
