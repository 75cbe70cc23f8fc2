"""WorkflowExecutor: the one generic Temporal workflow; it walks a definition's steps.

The walk is here: a list of steps runs in a scope, step by step, each dispatched to its kind
(``workflows/kinds/``) by :class:`workflows.steps.WorkflowStepProcessor`; kinds that hold lists
(`parallel`, `foreach`) call back into :meth:`run_scope` and :meth:`run_concurrently`. Every
other concern is a part of its own: the log's records (RunLog), the AI spend (Spending), the
allowance of child executions (ScopeAllowances), concurrent jobs (Jobs), the step records
(StepBook) and how the run ends (RunEnding).
"""

from __future__ import annotations

import asyncio
from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from workflows import versions
    from workflows.errors import StepFailed
    from workflows.failures import describe_failure
    from workflows.flow.messages import GRANT_SIGNAL
    from workflows.interpreter import patches
    from workflows.interpreter.concurrency import ConcurrencyGate
    from workflows.interpreter.ending import RunEnding, failed
    from workflows.interpreter.parts import RunParts
    from workflows.interpreter.records import StepBook, StepPositions, failed_with, succeeded
    from workflows.interpreter.run_log import RunLog
    from workflows.interpreter.run_tree import Allowance, ScopeAllowances
    from workflows.interpreter.services import RunServices
    from workflows.interpreter.spending import Spending
    from workflows.kinds import REGISTRY
    from workflows.kinds.base import route_failure
    from workflows.kinds.common import LAST_ERROR, StepBase
    from workflows.messages import (
        CANCEL_SIGNAL,
        STATUS_QUERY,
        STATUS_VIEW_QUERY,
        WORKFLOW_TYPE,
        CancelRequest,
        ExecutionState,
        ExecutionView,
        StatusRequest,
        StepRecord,
        StepStatus,
    )
    from workflows.metrics import StepMetrics
    from workflows.shared import ExecutionInput
    from workflows.status_view import Sizes, record_outputs, status_view
    from workflows.steps import WorkflowStepProcessor


def initial_context(input: ExecutionInput, execution_id: str, run_id: str) -> dict[str, Any]:
    """The variables a run starts with: its inputs and ``execution`` (or a continued run's)."""
    if input.carried is not None:
        return dict(input.carried.context)
    context = dict(input.input_vars)
    context["execution"] = {
        "id": execution_id,
        "run_id": run_id,
        "workflow_id": input.definition.id,
        "started_at": workflow.info().start_time.isoformat(),
    }
    if input.api_url is not None:  # absent, not null: older runs had no such key
        context["execution"]["api_url"] = input.api_url
    return context


def kind_waits(step_type: str) -> bool:
    """Whether steps of this type wait on the outside world (the log is written around them)."""
    kind = REGISTRY.get(step_type)
    return kind is not None and kind.waits


def allowance_at_start(input: ExecutionInput) -> int | None:
    """A top-level start takes the operator's cap; a child, a share or a continued run what it
    was handed (None: started before the cap, nothing counted)."""
    if input.carried is not None:
        return input.carried.descendants_left
    if input.depth == 0 and input.batch is None and input.limits is not None:
        return input.limits.max_descendants
    return input.descendants_left


def concurrency_gate(input: ExecutionInput, execution_id: str) -> ConcurrencyGate | None:
    """A top-level run of a definition with `concurrency` waits for a place (its children and
    foreach shares, which copy its input, run inside the place it holds)."""
    claim = input.concurrency
    if claim is None or input.depth != 0 or input.batch is not None:
        return None
    held = input.carried is not None and input.carried.concurrency_held
    started = workflow.info().start_time
    return ConcurrencyGate(claim, execution_id, input.definition.key, held, started)


@workflow.defn(name=WORKFLOW_TYPE)
class WorkflowExecutor:
    """Interprets one workflow definition."""

    @workflow.init
    def __init__(self, input: ExecutionInput) -> None:
        info = workflow.info()
        carried = input.carried
        self._input = input
        self._definition = input.definition
        self._execution_id = info.workflow_id
        self._run_id = carried.first_run_id if carried else info.run_id
        self._started_at = carried.started_at if carried else info.start_time
        self._runs = carried.runs if carried else 1
        self._next_index = carried.next_index if carried else 0
        self._continue_at: int | None = None
        self._limits = input.limits
        self._context = initial_context(input, self._execution_id, self._run_id)
        self._positions = StepPositions()
        self._processor = WorkflowStepProcessor(
            self._definition.defaults, self._execution_id, self._limits, input
        )
        self._book = StepBook(carried)
        self._ending = RunEnding(self._definition, self._limits, self._started_at)
        self._log = RunLog(
            lambda: self._parts.log_header(),
            created=carried is not None,
            writes=input.batch is None,
        )
        self._processor.deadline = self._log.deadline = self._ending.deadline
        self._spending = Spending(self._definition, carried, self._processor, input.batch is None)
        limit = self._limits.max_descendants if self._limits is not None else None
        tree = Allowance(allowance_at_start(input))
        self._allowances = ScopeAllowances(tree, self._context, limit)
        self._services = RunServices(
            self._run_scope, self._book, self._log, self._spending, self._allowances
        )
        self._sizes = Sizes()  # the status_view query's, remembered between polls
        self._metrics = StepMetrics(self._definition.id)
        self._parts = RunParts(
            input, self._execution_id, self._run_id, self._started_at, self._runs,
            self._context, self._processor, self._book, self._ending, self._spending,
            self._allowances,
        )  # fmt: skip
        self._gate = concurrency_gate(input, self._execution_id)
        for name, payloads in (carried.pending_signals if carried else {}).items():
            for payload in payloads:
                self._processor.deliver_signal(name, payload)

    # -- Temporal handlers ------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ExecutionState:
        """Everything, values in full (what clients before status_view ask)."""
        return self._parts.state()

    @workflow.query(name=STATUS_VIEW_QUERY)
    def status_view(self, request: StatusRequest | None = None) -> ExecutionView:
        """The status with large values summarised: bounded, since every poll of it is
        built and serialised here, on the worker running this execution."""
        return status_view(self._parts.state(), request, self._sizes)

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self, request: CancelRequest | None = None) -> None:
        if self._ending.cancel is None:
            self._ending.cancel = request or CancelRequest()

    @workflow.signal(name=GRANT_SIGNAL)
    def concurrency_grant(self) -> None:
        """The run's concurrency coordinator gives it a place."""
        if self._gate is not None:
            self._gate.grant()

    @workflow.signal(dynamic=True)
    def deliver(self, name: str, args: Sequence[RawValue]) -> None:
        """Any other signal name feeds `wait_for_signal` steps (buffered until read)."""
        self._processor.deliver_raw(name, args)

    # -- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ExecutionInput) -> ExecutionState:
        self._ending.lean = versions.settle(*patches.SETTLING)  # first: see versions.py
        self._log.decide()
        test = self._processor.test  # a test run's virtual clock (workflows/mocking.py)
        clock = test.start_clock(self._log) if test is not None else None
        carried = input.carried
        self._processor.strict_indexes = patches.strict_indexes(
            carried.strict_indexes if carried else None
        )
        self._processor.cel_conformant = patches.cel_conformant(
            carried.cel_conformant if carried else None
        )
        task, timed_out, native_cancel = await self._steps_until_the_end(carried is None)
        if self._ending.decide(task, timed_out, native_cancel, self._book.current):
            if self._continue_at is not None:  # a fresh run: same execution id, same log
                held = self._gate is not None and self._gate.held
                workflow.continue_as_new(self._parts.continued(self._continue_at, held))
            self._ending.status = "completed"
        native_cancel = await self._finalise() or native_cancel
        if clock is not None:
            clock.cancel()
        self._ending.closed = True
        self._ending.log_line(self._execution_id, self._input.definition_version)
        native_cancel = await self._ending.await_temporal_cancel(native_cancel)
        self._ending.result_or_raise(native_cancel)
        return self._parts.state()

    async def _steps_until_the_end(
        self, starts: bool
    ) -> tuple[asyncio.Task[None] | None, bool, bool]:
        """Run the steps in a task until they end, the deadline passes or a cancel arrives;
        then stop what still runs. (The task, whether the deadline passed, whether Temporal's
        own cancellation arrived.)"""
        native_cancel = timed_out = False
        task: asyncio.Task[None] | None = None
        gate = self._gate
        if gate is not None and not gate.held and not versions.patched(patches.CONCURRENCY_KEYS):
            self._gate = None
        try:
            if starts:
                self._parts.mark_searchable(with_status=not self._ending.lean)
                if not self._log.carrying:
                    await self._log.write()
            task = asyncio.create_task(self._run_steps())
            await self._ending.wait_for(task)
        except TimeoutError:
            timed_out = True
        except asyncio.CancelledError:
            native_cancel = True
        if task is not None and not task.done():
            self._ending.stopping = True
            task.cancel()
        while task is not None and not task.done():
            try:
                await workflow.wait_condition(task.done)
            except asyncio.CancelledError:
                native_cancel = True
        return task, timed_out, native_cancel

    async def _run_steps(self) -> None:
        """The top-level list: continue-as-new happens only between its steps."""
        steps = self._definition.steps
        index = self._next_index
        if self._gate is not None:
            await self._gate.enter(self._processor, self._log.flush)
        while index >= 0:
            self._book.check_limit(self._limits, steps[index])
            if self._parts.should_continue_as_new():
                await self._log.flush()
                self._continue_at = index
                return
            index = await self._next_step(steps, index, self._context, "")

    async def _run_list(
        self, steps: Sequence[StepBase], scope: MutableMapping[str, Any], prefix: str
    ) -> None:
        """A nested list of steps, from its first to its end (or "end")."""
        index = 0
        while index >= 0:
            self._book.check_limit(self._limits, steps[index])
            index = await self._next_step(steps, index, scope, prefix)

    async def _next_step(
        self, steps: Sequence[StepBase], index: int, scope: MutableMapping[str, Any], prefix: str
    ) -> int:
        step = steps[index]
        if self._log.flush_first(step):
            await self._log.flush()  # the log shows progress before a long wait
        return await self._run_step(steps, index, step, scope, prefix)

    async def _run_step(
        self,
        steps: Sequence[StepBase],
        index: int,
        step: StepBase,
        scope: MutableMapping[str, Any],
        prefix: str,
    ) -> int:
        """Run one step; return the index of the next step of its list, -1 for the end."""
        path = f"{prefix}{step.id}"
        record = self._book.start(step, path)
        log, carried = self._log.carry(step)
        try:
            try:
                outcome = await self._processor.execute(
                    step, scope, record.seq, path, self._services, log
                )
            finally:
                if log is not None:  # written or not, the records are free to ride again
                    self._log.release(carried)
        except (ActivityError, ChildWorkflowError, StepFailed, ApplicationError) as err:
            if is_cancelled_exception(err):
                await self._cancelled(record, path)
                raise
            if self._ending.stopping:
                raise
            return await self._failed(err, steps, index, step, scope, record, path)
        except asyncio.CancelledError:
            await self._cancelled(record, path)
            raise
        if self._stop_was_asked() and versions.patched(patches.LATE_RESULTS_STOP):
            # The activity finished after its cancel was asked for: what it cost counts, and
            # the step still ends cancelled, so its branch goes no further.
            record.usage = outcome.usage
            await self._cancelled(record, path)
            raise asyncio.CancelledError(f"step '{path}' was asked to stop")
        succeeded(record, record_outputs(outcome.output_vars), outcome.usage)
        scope.update(outcome.output_vars)
        if log is not None and outcome.logged:
            self._log.carried_written(carried)  # written by the activity
        if outcome.reused_from is not None:
            # A rerun took the source's result: no call, no activity. The record is written
            # at once by a log write labelled for the Temporal UI, so the reuse shows there.
            record.reused_from = outcome.reused_from
            record.reuse_key = outcome.reuse_key
            await self._complete(record, path, deferred=True)
            await self._log.flush(f"reused: {step.label} (from {outcome.reused_from})")
            return self._positions.after(outcome.next_target, index, steps)
        # An activity step's record rides with the next activity step (or the next flush).
        target = self._positions.after(outcome.next_target, index, steps)
        deferred = self._log.carries(step) or self._hands_off_first(prefix, target)
        await self._complete(record, path, deferred=deferred)
        return target

    async def _failed(
        self,
        err: Exception,
        steps: Sequence[StepBase],
        index: int,
        step: StepBase,
        scope: MutableMapping[str, Any],
        record: StepRecord,
        path: str,
    ) -> int:
        """A failed step: recorded, then routed by its `on_error` (or the run fails)."""
        error = describe_failure(err, step.id)
        # What the step's AI calls cost before it failed counts too.
        failed_with(record, error, err.usage if isinstance(err, StepFailed) else None)
        await self._complete(record, path)
        route = route_failure(step, error.type)
        if route is None or route == "fail":
            raise failed(error) from None
        scope[LAST_ERROR] = error.model_dump(include={"step_id", "type", "message"})
        return self._positions.after(None if route == "continue" else route, index, steps)

    def _hands_off_first(self, prefix: str, target: int) -> bool:
        """The run's last step ended holding a concurrency place: its record goes with the
        final log write, after the place is handed back (ConcurrencyGate.hands_off_first)."""
        return prefix == "" and target < 0 and self._gate is not None and self._gate.hands_off_first

    def _stop_was_asked(self) -> bool:
        """Was this step's job (or the whole run) told to stop while the step ran?"""
        return self._ending.stopping or self._services.jobs.told_to_stop()

    async def _cancelled(self, record: StepRecord, path: str) -> None:
        """A step stopped because its siblings failed (fail_fast): recorded as cancelled.
        When the whole run stops, its in-flight steps are closed by _finalise instead."""
        if self._ending.stopping or path not in self._book.in_flight:
            return
        record.status = "cancelled"
        record.end_time = workflow.now()
        await self._complete(record, path, deferred=True)

    async def _complete(self, record: StepRecord, path: str, deferred: bool = False) -> None:
        self._book.in_flight.pop(path, None)
        self._spending.publish()
        if self._processor.test is None:  # test runs stay out of the metrics
            self._metrics.count(record)  # replay-safe: not counted again on replay
        self._book.finish(record, path)
        if self._log.add(record, kind_waits(record.type), deferred):
            await self._log.flush()

    # -- nested lists (kinds reach this through RunServices) --------------------------------

    async def _run_scope(
        self,
        steps: Sequence[StepBase],
        variables: Mapping[str, Any],
        adds: dict[str, Any],
        path: str,
        ways: int = 1,
    ) -> dict[str, Any]:
        """Run a nested list in a scope of its own: it reads ``variables`` (and ``adds``);
        what its steps bind is returned. A failure that ends the list raises StepFailed (the
        holding step fails with it).
        ``ways``: how many sibling scopes not yet started share the enclosing scope's
        allowance of executions with this one (foreach iterations, parallel branches)."""
        local: dict[str, Any] = dict(adds)
        # Reads fall through to the enclosing scopes; writes stay in this one.
        scope: ChainMap[str, Any] = ChainMap(local, variables)  # type: ignore[arg-type]
        self._allowances.open(scope, variables, ways)
        try:
            await self._run_list(steps, scope, f"{path}.")
        finally:
            self._allowances.close(scope)
        return {k: v for k, v in local.items() if k not in adds and k != LAST_ERROR}

    # -- ending --------------------------------------------------------------------------

    async def _finalise(self) -> bool:
        """Close the in-flight steps, write the final log, publish the status. True if
        Temporal's cancellation arrived while finalising (the write was repeated)."""
        ending = self._ending
        ending.ended_at = workflow.now()
        status: StepStatus = "cancelled" if ending.status == "cancelled" else "failed"
        for record in self._book.close_in_flight(status, ending.error, ending.ended_at):
            if self._processor.test is None:  # test runs stay out of the metrics
                self._metrics.count(record)
            self._log.pending.append(record)
        ending.publish_status()
        if self._gate is not None:  # the place goes back with the last log write
            return await self._gate.released_with(self._log.write_final())
        return await self._log.write_final()
