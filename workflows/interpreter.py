"""WorkflowExecutor: the one generic Temporal workflow that interprets a definition.

The definition travels in the workflow input, so every run is pinned to the document it
started with. Flow control, status and logging live here; what each step does lives in its
kind (``workflows/kinds/``), dispatched by :class:`workflows.steps.WorkflowStepProcessor`.

Control flow is a tree (SPEC §9): :meth:`WorkflowExecutor._run_list` runs one list of steps in
a scope and recurses, through the step kinds that hold lists (`parallel`, `foreach`), into
nested lists with scopes of their own. A step's place is its path (``fan.b.fetch``,
``each[3].fetch``; a top-level step's id), and every step in flight is in the status.

Stopping. The steps run in a child task; the main coroutine waits for that task, for a
``cancel`` signal, for Temporal's own cancellation and for the execution's deadline, whichever
comes first. On any of them it cancels the steps task, waits for the in-flight activity to
acknowledge, and writes the final log before the run closes: no path ends without a log.
"""

from __future__ import annotations

import asyncio
from collections import ChainMap, deque
from collections.abc import Callable, Coroutine, Mapping, MutableMapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    is_cancelled_exception,
)

with workflow.unsafe.imports_passed_through():
    from workflows.budget import RunBudget
    from workflows.errors import FailureType, ScopeFailed, StepFailure
    from workflows.failures import describe_failure, engine_error
    from workflows.kinds import REGISTRY, kind_of
    from workflows.kinds.base import StepOutcome, Waiting, route_failure
    from workflows.kinds.common import END, LAST_ERROR, StepBase
    from workflows.messages import STATUS_VIEW_QUERY, ExecutionView, StatusRequest
    from workflows.metrics import count_step
    from workflows.run_tree import Allowance
    from workflows.shared import (
        BUDGET_PAYLOAD_SCHEMA,
        BUDGET_SIGNAL,
        CANCEL_SIGNAL,
        FOREACH_BATCH_TYPE,
        SA_COST_USD,
        SA_DEFINITION_ID,
        SA_STATUS,
        SA_TOKENS,
        STATUS_QUERY,
        WORKFLOW_TYPE,
        WRITE_EXECUTION_LOG,
        CancelRequest,
        CarriedState,
        ExecutionError,
        ExecutionInput,
        ExecutionState,
        ExecutionStatus,
        ForeachBatchResult,
        LogWrite,
        StepRecord,
    )
    from workflows.status_view import Sizes, record_outputs, status_view
    from workflows.steps import WorkflowStepProcessor
    from workflows.usage import Usage

# Log writes are local activities (one marker event each). They retry for a long time on
# purpose: an unwritable log directory stalls runs loudly instead of losing their logs.
LOG_WRITE_OPTIONS: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=10),
    "schedule_to_close_timeout": timedelta(hours=24),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=0,  # bounded by schedule_to_close_timeout above
    ),
}

# The status query keeps this many recent steps; the log file keeps them all.
STATUS_STEP_WINDOW = 200

# Log writes are batched: records of steps that run inside the workflow (set, condition,
# fail) wait for the next step that waits on the outside world (or for LOG_BATCH of them), so
# a 5,000-iteration loop costs tens of log writes, not 10,000. Nothing is lost by waiting:
# those steps are recomputed identically on replay.
LOG_BATCH = 100
PATCH_BATCHED_LOGS = "batched-log-writes"
# Activity steps carry the log records not yet written (the batched ones and the previous
# step's) and their activity writes them alongside its call: no log-writing local activity per
# step, no extra workflow activation, and the write overlaps the step's own wait. The first
# carrier (or the first flush) also creates the log. Runs with this marker batch as well (the
# older patch is then not asked for, so not recorded). Which kinds carry: their `carries_log`.
PATCH_ACTIVITIES_CARRY_LOG = "activities-carry-log-records"
# AI spend is published in search attributes as it grows (older runs did not upsert them).
PATCH_USAGE_ATTRIBUTES = "ai-usage-attributes"
# The final log write is repeated when Temporal's cancel cancels it (older runs closed with the
# log still saying running).
PATCH_FINAL_WRITE_OUTLIVES_CANCEL = "final-log-write-outlives-cancel"
# An unexpected error in the interpreter fails the run (older runs failed the workflow task).
PATCH_ENGINE_ERRORS_FAIL_RUN = "engine-errors-fail-run"
# AI calls in flight reserve what a call has cost, so concurrent calls cannot all start on a
# budget that one of them uses up (workflows/budget.py); older runs checked only the spent.
PATCH_BUDGET_RESERVATIONS = "budget-reservations"
# A step whose activity finished after its cancel was asked for ends cancelled (older runs
# took the late result and let the branch run on past its cancellation).
PATCH_LATE_RESULTS_STOP = "late-results-stop"
# Templates read a digits-only path segment with a leading zero ({items.01}) as plain text, as
# RFC 6901 has it (older runs read it as index 1); workflows/templating.py. Decided once when
# an execution starts; its continued runs and foreach shares are handed the decision.
PATCH_STRICT_LIST_INDEXES = "strict-list-indexes"
# CEL by the conformant evaluator (workflows/conditions.py). Decided once, when an execution
# starts, and carried across continue-as-new: a run never changes semantics on the way.
PATCH_CEL_CONFORMANT = "cel-conformant"


def strict_indexes(handed: bool | None) -> bool:
    """How this run's templates read ``{items.01}``: as the run it continues (or the foreach
    step it runs a share of) did, or, when it starts an execution (or its parent predates the
    field), as the patch marker says: a run whose history has no marker started before the
    rule and keeps reading it as index 1."""
    if handed is not None:
        return handed
    return workflow.patched(PATCH_STRICT_LIST_INDEXES)


def kind_waits(step_type: str) -> bool:
    """Whether steps of this type wait on the outside world (the log is written around them)."""
    kind = REGISTRY.get(step_type)
    return kind is not None and kind.waits


class ExecutionFailed(Exception):
    """Raised inside the steps task when a step failure ends the execution."""

    def __init__(self, error: ExecutionError) -> None:
        super().__init__(error.message)
        self.error = error


@workflow.defn(name=WORKFLOW_TYPE)
class WorkflowExecutor:
    """Interprets one workflow definition (the plan's WorkflowExecutor)."""

    @workflow.init
    def __init__(self, input: ExecutionInput) -> None:
        info = workflow.info()
        carried = input.carried
        self._input = input
        self._definition = input.definition
        self._indexes: dict[int, dict[str, int]] = {}  # per list of steps: id -> position
        self._execution_id = info.workflow_id
        self._run_id = carried.first_run_id if carried else info.run_id
        self._started_at: datetime = carried.started_at if carried else info.start_time
        self._ended_at: datetime | None = None
        self._next_index = carried.next_index if carried else 0
        self._seq = carried.seq if carried else 0
        self._steps_done = carried.steps_done if carried else 0
        self._steps: list[StepRecord] = list(carried.recent_steps) if carried else []
        self._pending: list[StepRecord] = []  # completed, not yet in the log file
        self._in_transit: set[int] = set()  # pending records an activity in flight carries
        self._batched = False  # decided in run() by a patch marker (older runs: one per step)
        self._carry_log = False  # decided in run(): activity steps carry the log records
        self._log_created = carried is not None
        self._runs = carried.runs if carried else 1
        self._steps_this_run = 0
        self._continue_at: int | None = None
        self._in_flight: dict[str, StepRecord] = {}  # step path -> its record, in start order
        self._status: ExecutionStatus = "running"
        self._error: ExecutionError | None = None
        self._cancel: CancelRequest | None = None
        self._stopping = False
        # Jobs of run_concurrently told to stop (fail_fast): an activity that completes after
        # its cancel was requested hands back a result, and the job must still stop.
        self._told_to_stop: set[asyncio.Task[Any]] = set()
        # The outcome is decided before the final log write; until that write is done (and
        # the run closes), the status query still answers "running", matching Temporal.
        self._closed = False
        if carried:
            self._context: dict[str, Any] = dict(carried.context)
        else:
            self._context = dict(input.input_vars)
            self._context["execution"] = {
                "id": self._execution_id,
                "run_id": self._run_id,
                "workflow_id": self._definition.id,
                "started_at": self._started_at.isoformat(),
            }
            if input.api_url is not None:  # absent, not null: older runs had no such key
                self._context["execution"]["api_url"] = input.api_url
        self._limits = input.limits
        budget = self._definition.budget
        self._budget = RunBudget(
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
        self._usage = self._budget.usage
        self._tree = Allowance(self._allowance_at_start(input))
        # Each scope's share of the tree's allowance, by the scope's mapping (run_scope).
        self._allowances: dict[int, Allowance] = {id(self._context): self._tree}
        self._usage_published = (self._usage.cost_usd, self._usage.total_tokens)
        self._processor = WorkflowStepProcessor(
            self._definition.defaults, self._execution_id, self._limits, input
        )
        self._sizes = Sizes()  # the status_view query's, remembered between polls
        if carried:
            for name, payloads in carried.pending_signals.items():
                for payload in payloads:
                    self._processor.deliver_signal(name, payload)

    # -- Temporal handlers ------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ExecutionState:
        """Everything, values in full (what clients before status_view ask)."""
        return self._state()

    @workflow.query(name=STATUS_VIEW_QUERY)
    def status_view(self, request: StatusRequest | None = None) -> ExecutionView:
        """The status with large values summarised: bounded, since every poll of it is
        built and serialised here, on the worker running this execution."""
        return status_view(self._state(), request, self._sizes)

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self, request: CancelRequest | None = None) -> None:
        if self._cancel is None:
            self._cancel = request or CancelRequest()

    @workflow.signal(dynamic=True)
    def deliver(self, name: str, args: Sequence[RawValue]) -> None:
        """Any other signal name feeds `wait_for_signal` steps (buffered until read).

        A payload that cannot be decoded is dropped, never raised: an exception here would
        fail every workflow task of the run from now on.
        """
        try:
            payload = workflow.payload_converter().from_payload(args[0].payload) if args else None
        except Exception as err:
            workflow.logger.warning("signal %r dropped: its payload cannot be read (%s)", name, err)
            return
        self._processor.deliver_signal(name, payload)

    # -- the run ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, input: ExecutionInput) -> ExecutionState:
        native_cancel = False
        timed_out = False
        task: asyncio.Task[None] | None = None
        self._carry_log = workflow.patched(PATCH_ACTIVITIES_CARRY_LOG)
        self._batched = self._carry_log or workflow.patched(PATCH_BATCHED_LOGS)
        carried = input.carried
        self._processor.strict_indexes = strict_indexes(carried.strict_indexes if carried else None)
        self._processor.cel_conformant = (
            carried.cel_conformant if carried else workflow.patched(PATCH_CEL_CONFORMANT)
        )
        try:
            if input.carried is None:
                self._mark_searchable()
                if not self._carry_log:
                    await self._write_log()
            task = asyncio.create_task(self._run_steps())
            await workflow.wait_condition(
                lambda: task.done() or self._cancel is not None,
                timeout=self._time_left(),
                timeout_summary="execution deadline",
            )
        except TimeoutError:
            timed_out = True
        except asyncio.CancelledError:
            native_cancel = True

        if task is not None and not task.done():
            self._stopping = True
            task.cancel()
        while task is not None and not task.done():
            try:
                await workflow.wait_condition(task.done)
            except asyncio.CancelledError:
                native_cancel = True

        if task is None:
            self._status = "cancelled"
        elif timed_out:
            self._status = "failed"
            self._error = ExecutionError(
                type=FailureType.WORKFLOW_TIMEOUT,
                message=f"execution exceeded its timeout of {self._timeout_seconds():g}s"
                + ("" if self._definition.timeout_seconds else " (EXECUTION_TIMEOUT_SECONDS)")
                + (f" during step '{self._current.step_id}'" if self._current else ""),
                step_id=self._current.step_id if self._current else None,
            )
        elif native_cancel or self._cancel is not None:
            self._status = "cancelled"
            reason = (self._cancel.reason if self._cancel else None) or "cancelled by request"
            self._error = ExecutionError(
                type=FailureType.CANCELLED,
                message=reason,
                step_id=self._current.step_id if self._current else None,
            )
        elif (err := task.exception()) is not None:
            if not isinstance(err, ExecutionFailed):
                if not workflow.patched(PATCH_ENGINE_ERRORS_FAIL_RUN):
                    raise err  # type: ignore[misc]  # older runs: fail the workflow task
                # A bug of ours must not leave the run retrying its workflow task forever.
                err = ExecutionFailed(engine_error(err, self._current))
            self._status = "failed"
            self._error = err.error
        elif self._continue_at is not None:
            self._continue_as_new(self._continue_at)
        else:
            self._status = "completed"

        native_cancel = await self._finalise() or native_cancel
        self._closed = True
        self._log_outcome()
        if self._status == "completed":
            return self._state()
        if self._status == "cancelled" and native_cancel:
            raise asyncio.CancelledError(self._error.message if self._error else "cancelled")
        assert self._error is not None
        raise ApplicationError(self._error.message, type=self._error.type, non_retryable=True)

    @property
    def _current(self) -> StepRecord | None:
        """The first step in flight (the run's current step)."""
        return next(iter(self._in_flight.values()), None)

    async def _run_steps(self) -> None:
        """The top-level list: continue-as-new happens only between its steps."""
        steps = self._definition.steps
        index = self._next_index
        while index >= 0:
            self._check_step_limit(steps[index])
            if self._should_continue_as_new():
                await self._flush_log()
                self._continue_at = index
                return
            index = await self._next_step(steps, index, self._context, "")

    async def _run_list(
        self, steps: Sequence[StepBase], scope: MutableMapping[str, Any], prefix: str
    ) -> None:
        """A nested list of steps, from its first to its end (or "end")."""
        index = 0
        while index >= 0:
            self._check_step_limit(steps[index])
            index = await self._next_step(steps, index, scope, prefix)

    def _check_step_limit(self, step: StepBase) -> None:
        if self._limits is not None and self._steps_done >= self._limits.max_steps:
            raise ExecutionFailed(
                ExecutionError(
                    type=FailureType.STEP_LIMIT,
                    message=f"the execution took {self._steps_done:,} steps, its limit "
                    "(EXECUTION_MAX_STEPS, or the definition's limits.max_steps); a loop "
                    "that never ends? Add an exit condition or raise the limit",
                    step_id=step.id,
                )
            )

    async def _next_step(
        self, steps: Sequence[StepBase], index: int, scope: MutableMapping[str, Any], prefix: str
    ) -> int:
        step = steps[index]
        kind = kind_of(step)
        if (
            self._batched
            and (self._pending or not self._log_created)
            and kind.waits
            and not self._carries_log(step)
        ):
            await self._flush_log()  # the log shows progress before a long wait
        return await self._run_step(steps, index, step, scope, prefix)

    # -- the tree of executions (workflows/run_tree.py) ------------------------------------

    @staticmethod
    def _allowance_at_start(input: ExecutionInput) -> int | None:
        """A top-level start takes the operator's cap; a child, a share or a continued run
        what it was handed (None: started before the cap, nothing counted)."""
        if input.carried is not None:
            return input.carried.descendants_left
        if input.depth == 0 and input.batch is None and input.limits is not None:
            return input.limits.max_descendants
        return input.descendants_left

    def _allowance_of(self, variables: Mapping[str, Any]) -> Allowance:
        return self._allowances.get(id(variables), self._tree)

    def pay_for_child(
        self, variables: Mapping[str, Any], starts_more: bool, ways: int = 1
    ) -> int | None:
        """Pay for a child execution from the allowance of the scope that starts it."""
        limit = self._limits.max_descendants if self._limits is not None else None
        return self._allowance_of(variables).pay_for_child(starts_more, limit, ways)

    def refund(self, variables: Mapping[str, Any], unused: int | None) -> None:
        self._allowance_of(variables).refund(unused)

    def started_child(self, path: str, execution_id: str) -> None:
        """A step's child execution is named on its record as soon as it starts."""
        record = self._in_flight.get(path)
        if record is not None:
            record.child_execution_id = execution_id

    # -- nested scopes (the Scopes the step processor gives kinds) ------------------------

    async def run_scope(
        self,
        steps: Sequence[StepBase],
        variables: Mapping[str, Any],
        adds: dict[str, Any],
        path: str,
        ways: int = 1,
    ) -> dict[str, Any]:
        """Run a nested list in a scope of its own: it reads ``variables`` (and ``adds``);
        what its steps bind is returned. A failure that ends the list raises ScopeFailed.
        ``ways``: how many sibling scopes not yet started share the enclosing scope's
        allowance of executions with this one (foreach iterations, parallel branches)."""
        local: dict[str, Any] = dict(adds)
        # Reads fall through to the enclosing scopes; writes stay in this one.
        scope: ChainMap[str, Any] = ChainMap(local, variables)  # type: ignore[arg-type]
        allowance = self._allowance_of(variables).share(ways)
        self._allowances[id(scope)] = allowance
        try:
            await self._run_list(steps, scope, f"{path}.")
        except ExecutionFailed as failed:
            error = failed.error
            raise ScopeFailed(error.message, error.type, error.step_id) from None
        finally:
            allowance.close()
            del self._allowances[id(scope)]
        return {k: v for k, v in local.items() if k not in adds and k != LAST_ERROR}

    async def run_concurrently(
        self, jobs: Sequence[Callable[[], Coroutine[Any, Any, Any]]], limit: int, fail_fast: bool
    ) -> list[Any]:
        """Run ``jobs`` with at most ``limit`` at once; results in job order. With
        ``fail_fast`` the first failure cancels the jobs still running (and waits until they
        have stopped) and is raised; otherwise a failed job's exception is its result."""
        results: list[Any] = [None] * len(jobs)
        running: dict[asyncio.Task[Any], int] = {}
        started = 0
        failure: BaseException | None = None
        try:
            while running or (started < len(jobs) and failure is None):
                while started < len(jobs) and len(running) < limit and failure is None:
                    running[asyncio.create_task(jobs[started]())] = started
                    started += 1
                done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=running.__getitem__):
                    position = running.pop(task)
                    self._told_to_stop.discard(task)
                    error = task.exception() if not task.cancelled() else asyncio.CancelledError()
                    if error is None:
                        results[position] = task.result()
                    elif fail_fast and failure is None:
                        failure = error
                        for other in running:
                            self._told_to_stop.add(other)
                            other.cancel()
                    else:
                        results[position] = error
        except asyncio.CancelledError:
            for task in running:
                self._told_to_stop.add(task)
                task.cancel()
            if running:
                await workflow.wait(list(running))
            raise
        finally:
            self._told_to_stop.difference_update(running)
        if failure is not None:
            raise failure
        return results

    def _should_continue_as_new(self) -> bool:
        """At a step boundary: when Temporal suggests it, or after max_steps_per_run steps."""
        if self._steps_this_run == 0 or self._cancel is not None:
            return False
        limit = self._input.max_steps_per_run
        return workflow.info().is_continue_as_new_suggested() or (
            limit is not None and self._steps_this_run >= limit
        )

    def _continue_as_new(self, index: int) -> None:
        """Hand the context to a fresh run: same execution id, same log, short history."""
        carried = CarriedState(
            context=self._context,
            next_index=index,
            seq=self._seq,
            started_at=self._started_at,
            first_run_id=self._run_id,
            steps_done=self._steps_done,
            runs=self._runs + 1,
            recent_steps=self._steps[-STATUS_STEP_WINDOW:],
            pending_signals={k: list(v) for k, v in self._processor.signals.items() if v},
            usage=self._usage.for_run(),
            budget=self._budget.limits or None,
            strict_indexes=self._processor.strict_indexes,
            descendants_left=self._tree.left,
            cel_conformant=self._processor.cel_conformant,
        )
        workflow.continue_as_new(self._input.model_copy(update={"carried": carried}))

    async def _run_step(
        self,
        steps: Sequence[StepBase],
        index: int,
        step: StepBase,
        scope: MutableMapping[str, Any],
        prefix: str,
    ) -> int:
        """Run one step; return the index of the next step of its list, -1 for the end."""
        seq = self._seq
        self._seq += 1
        path = f"{prefix}{step.id}"
        record = StepRecord(
            seq=seq,
            step_id=step.id,
            name=step.label,
            type=step.type,
            start_time=workflow.now(),
            run_id=workflow.info().run_id,
            path=path,
        )
        self._in_flight[path] = record
        log: LogWrite | None = None
        # Each record rides with one activity at a time: concurrent steps do not all carry
        # the same records (the records left over go with the next carrier or a flush).
        carried = [r for r in self._pending if id(r) not in self._in_transit]
        if self._carries_log(step) and (carried or not self._log_created):
            log = self._log_entry(carried)
            self._in_transit.update(id(r) for r in carried)
        try:
            outcome = await self._execute(step, scope, seq, path, log, carried)
        except (ActivityError, ChildWorkflowError, StepFailure, ApplicationError) as err:
            if is_cancelled_exception(err):
                await self._cancelled(record, path)
                raise
            if self._stopping:
                raise
            error = describe_failure(err, step.id)
            record.status = "failed"
            record.end_time = workflow.now()
            record.error = error.message
            record.error_type = error.type
            if isinstance(err, StepFailure) and err.usage:
                record.usage = err.usage  # what the step's AI calls cost before it failed
            await self._complete(record, path)
            route = route_failure(step, error.type)
            if route is None or route == "fail":
                raise ExecutionFailed(error) from None
            scope[LAST_ERROR] = error.model_dump(include={"step_id", "type", "message"})
            return self._target(None if route == "continue" else route, index, steps)
        except asyncio.CancelledError:
            await self._cancelled(record, path)
            raise
        if self._stop_was_asked() and workflow.patched(PATCH_LATE_RESULTS_STOP):
            # The activity finished after its cancel was asked for: what it cost counts, and
            # the step still ends cancelled, so its branch goes no further.
            record.usage = outcome.usage
            await self._cancelled(record, path)
            raise asyncio.CancelledError(f"step '{path}' was asked to stop")
        record.status = "success"
        record.end_time = workflow.now()
        record.output_vars = record_outputs(outcome.output_vars)
        record.usage = outcome.usage
        scope.update(outcome.output_vars)
        if log is not None and outcome.logged:
            self._forget_pending(log.steps)  # written by the activity
            self._log_created = True
        if outcome.reused_from is not None:
            # A rerun took the source's result: no call, no activity. The record is written
            # at once by a log write labelled for the Temporal UI, so the reuse shows there.
            record.reused_from = outcome.reused_from
            record.reuse_key = outcome.reuse_key
            await self._complete(record, path, deferred=True)
            await self._flush_log(f"reused: {step.label} (from {outcome.reused_from})")
            return self._target(outcome.next_target, index, steps)
        # An activity step's record rides with the next activity step (or the next flush).
        await self._complete(record, path, deferred=self._carries_log(step))
        return self._target(outcome.next_target, index, steps)

    def _stop_was_asked(self) -> bool:
        """Was this step's job (or the whole run) told to stop while the step ran?"""
        if self._stopping:
            return True
        task = asyncio.current_task()
        return task is not None and task in self._told_to_stop

    async def _execute(
        self,
        step: StepBase,
        scope: MutableMapping[str, Any],
        seq: int,
        path: str,
        log: LogWrite | None,
        carried: list[StepRecord],
    ) -> StepOutcome:
        try:
            return await self._processor.execute(step, scope, seq, path, self, log)
        finally:
            if log is not None:  # written or not, the records are free to ride again
                self._in_transit.difference_update(id(r) for r in carried)

    async def _cancelled(self, record: StepRecord, path: str) -> None:
        """A step stopped because its siblings failed (fail_fast): recorded as cancelled.
        When the whole run stops, its in-flight steps are closed by _finalise instead."""
        if self._stopping or path not in self._in_flight:
            return
        record.status = "cancelled"
        record.end_time = workflow.now()
        await self._complete(record, path, deferred=True)

    def _carries_log(self, step: StepBase) -> bool:
        return self._carry_log and kind_of(step).carries_log

    def _target(self, target: str | None, index: int, steps: Sequence[StepBase]) -> int:
        if target == END:
            return -1
        if target is None:
            return index + 1 if index + 1 < len(steps) else -1
        positions = self._indexes.get(id(steps))
        if positions is None:
            positions = self._indexes[id(steps)] = {s.id: i for i, s in enumerate(steps)}
        return positions[target]

    async def _complete(self, record: StepRecord, path: str, deferred: bool = False) -> None:
        self._in_flight.pop(path, None)
        self._publish_usage()
        count_step(self._definition.id, record)  # replay-safe: not counted again on replay
        self._steps_done += 1
        self._steps_this_run += 1
        self._steps.append(record)
        if len(self._steps) > STATUS_STEP_WINDOW:
            del self._steps[: len(self._steps) - STATUS_STEP_WINDOW]
        self._pending.append(record)
        if (
            not self._batched
            or (kind_waits(record.type) and not deferred)
            or len(self._pending) >= LOG_BATCH
        ):
            await self._flush_log()

    # -- AI spend (the StepRun a kind gets calls these; workflows/budget.py) ----------------

    def account(self, usage: dict[str, Any] | None, calls: int = 1, path: str = "") -> None:
        """Add an AI call's usage to the run's totals (releasing its reservation)."""
        self._budget.account(usage, calls, path)

    async def budget_gate(self, path: str) -> None:
        """Before an AI call: within budget (what is spent and what calls in flight reserve),
        go on; over it, fail or wait for new limits."""
        if self._budget.limits and not self._budget.reserving:
            self._budget.reserving = workflow.patched(PATCH_BUDGET_RESERVATIONS)
        await self._budget.gate(path, self._ask_for_more)

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

    def release_budget(self, path: str) -> None:
        self._budget.release(path)

    def check_budget_after(self) -> None:
        """After an AI call: a `fail` budget fails the step that spent past it."""
        self._budget.check_after()

    def _publish_usage(self) -> None:
        """Keep WorkflowCostUsd / WorkflowTokens current (searchable in the Temporal UI)."""
        current = (self._usage.cost_usd, self._usage.total_tokens)
        if current == self._usage_published or self._input.batch is not None:
            return
        if not workflow.patched(PATCH_USAGE_ATTRIBUTES):
            return
        self._usage_published = current
        workflow.upsert_search_attributes(
            [SA_COST_USD.value_set(current[0]), SA_TOKENS.value_set(current[1])]
        )

    def adopt(self, records: Sequence[StepRecord], steps_done: int) -> None:
        """Records a foreach share ran in its child workflow join this run's status and log,
        numbered in this run's sequence."""
        run_id = workflow.info().run_id
        for record in records:
            record.seq = self._seq
            record.run_id = run_id
            self._seq += 1
            self._steps.append(record)
            self._pending.append(record)
        if len(self._steps) > STATUS_STEP_WINDOW:
            del self._steps[: len(self._steps) - STATUS_STEP_WINDOW]
        self._steps_done += steps_done
        self._steps_this_run += steps_done

    def _forget_pending(self, written: Sequence[StepRecord]) -> None:
        """Drop records a write has stored (by identity: parallel steps write concurrently)."""
        stored = {id(record) for record in written}
        self._pending[:] = [record for record in self._pending if id(record) not in stored]

    async def _flush_log(self, summary: str = "execution log") -> None:
        if self._input.batch is not None:
            return  # a foreach share: its parent writes the records it hands back
        records = list(self._pending)
        await self._write_log(records, summary)
        # Cleared only once written: a cancellation mid-write leaves them for _finalise.
        self._forget_pending(records)

    async def _finalise(self) -> bool:
        """Close the in-flight step, write the final log, publish the status.

        Returns True if Temporal's cancellation arrived while finalising (the log write is
        repeated: it is idempotent, and the run must not close without it).
        """
        self._ended_at = workflow.now()
        for record in self._in_flight.values():
            record.status = "cancelled" if self._status == "cancelled" else "failed"
            record.end_time = self._ended_at
            count_step(self._definition.id, record)
            if self._error is not None:
                record.error = self._error.message
                record.error_type = self._error.type
            self._steps.append(record)
            self._pending.append(record)
        self._in_flight.clear()
        workflow.upsert_search_attributes([SA_STATUS.value_set(self._status)])
        cancelled_meanwhile = False
        while True:
            try:
                await self._write_log(list(self._pending))
                self._pending.clear()
                return cancelled_meanwhile
            except asyncio.CancelledError:
                cancelled_meanwhile = True
            except ActivityError as err:
                # Temporal's cancel can reach the final write before it starts: the write's
                # own cancellation. Older runs let it end the run with the log still open.
                if not is_cancelled_exception(err) or not workflow.patched(
                    PATCH_FINAL_WRITE_OUTLIVES_CANCEL
                ):
                    raise
                cancelled_meanwhile = True

    # -- helpers ----------------------------------------------------------------------------

    def _log_outcome(self) -> None:
        """One line in the worker's log per finished run (workflow.logger skips replays, so
        it is written once), with execution_id in JSON mode like every line about a run."""
        took = ((self._ended_at or workflow.now()) - self._started_at).total_seconds()
        reason = f": {self._error.type}: {self._error.message}" if self._error else ""
        workflow.logger.info(
            "execution %s %s (workflow %s v%s) in %.2fs%s",
            self._execution_id,
            self._status,
            self._definition.id,
            self._input.definition_version,
            took,
            reason,
        )

    def _mark_searchable(self) -> None:
        """Runs started outside the API (CLI, UI) still get the project's search attributes."""
        attributes = workflow.info().typed_search_attributes
        updates = []
        if attributes.get(SA_DEFINITION_ID) is None:
            updates.append(SA_DEFINITION_ID.value_set(self._definition.key))
        if attributes.get(SA_STATUS) is None:
            updates.append(SA_STATUS.value_set("running"))
        if updates:
            workflow.upsert_search_attributes(updates)

    def _timeout_seconds(self) -> float | None:
        if self._limits is not None:
            return self._limits.timeout_seconds
        return self._definition.timeout_seconds

    def _time_left(self) -> timedelta | None:
        limit = self._timeout_seconds()
        if limit is None:
            return None
        left = timedelta(seconds=limit) - (workflow.now() - self._started_at)
        return max(left, timedelta(milliseconds=1))

    async def _write_log(
        self, records: list[StepRecord] | None = None, summary: str = "execution log"
    ) -> None:
        entry = self._log_entry(records or [])
        await workflow.execute_local_activity(
            WRITE_EXECUTION_LOG, entry, summary=summary, **LOG_WRITE_OPTIONS
        )
        self._log_created = True

    def _log_entry(self, records: list[StepRecord]) -> LogWrite:
        """The log header as it stands, with ``records`` to merge."""
        batch: dict[str, Any] = {"steps": records}
        if not self._batched:  # the first version's shape: at most one record per write
            batch = {"step": records[0] if records else None}
        return LogWrite(
            execution_id=self._execution_id,
            run_id=self._run_id,
            workflow_id=self._definition.id,
            workflow_name=self._definition.name,
            workflow_version=self._input.definition_version,
            status=self._status,
            start_time=self._started_at,
            end_time=self._ended_at,
            error=self._error,
            usage=self._usage.for_run() if self._usage.ai_calls else None,
            **batch,
        )

    def _state(self) -> ExecutionState:
        waiting = self._processor.waiting if not self._closed else None
        steps = list(self._steps) + list(self._in_flight.values())
        return ExecutionState(
            execution_id=self._execution_id,
            run_id=self._run_id,
            workflow_id=self._definition.id,
            workflow_name=self._definition.name,
            definition_version=self._input.definition_version,
            status=self._status if self._closed else "running",
            current_step=next(iter(self._in_flight), None),
            current_steps=list(self._in_flight),
            started_at=self._started_at,
            ended_at=self._ended_at,
            steps=steps,
            steps_total=self._steps_done,
            outputs={k: v for k, v in self._context.items() if k not in ("execution", "secrets")},
            error=self._error,
            buffered_signals={k: len(v) for k, v in self._processor.signals.items() if v},
            rerun_of=self._input.rerun_of,
            usage=self._usage.for_run(),  # zeros, not null, for a run with no AI call
            waiting_for=waiting.signal if waiting else None,
            waiting_until=waiting.until if waiting else None,
            waiting_payload_schema=waiting.payload_schema if waiting else None,
            descendants_left=self._tree.left,
        )


@workflow.defn(name=FOREACH_BATCH_TYPE)
class ForeachBatchWorkflow(WorkflowExecutor):
    """A share of a large `foreach` (workflows/kinds/foreach.py), run as a child workflow so
    the parent's history stays short. It runs the share's iterations with the interpreter's
    own machinery and hands back their results and step records; it writes no log and sets
    no search attributes of its own (its parent's log and status show its steps)."""

    @workflow.init
    def __init__(self, input: ExecutionInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: ExecutionInput) -> ForeachBatchResult:  # type: ignore[override]
        batch = input.batch
        assert batch is not None, "a ForeachBatch run needs input.batch"
        self._batched = True
        self._processor.strict_indexes = strict_indexes(batch.strict_indexes)
        self._processor.cel_conformant = batch.cel_conformant  # the parent's evaluator
        kind = REGISTRY["foreach"]
        step = kind.model.model_validate(batch.step)
        view = self._processor.view(batch.path, self._seq, dict(batch.variables), self)
        try:
            results = await kind.iterate(step, batch.items, batch.offset, view)  # type: ignore[attr-defined]
        except StepFailure as failure:
            raise ApplicationError(
                str(failure), type=failure.failure_type, non_retryable=True
            ) from None
        return ForeachBatchResult(
            results=results,
            records=list(self._pending),
            steps_done=self._steps_done,
            descendants_left=self._tree.left,
        )


ENGINE_WORKFLOWS = (WorkflowExecutor, ForeachBatchWorkflow)
"""The workflow types a worker registers."""
