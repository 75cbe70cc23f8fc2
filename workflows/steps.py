"""WorkflowStepProcessor: runs one step of a definition inside the workflow.

It dispatches a step to its kind (``workflows/kinds/``, one module a type) and gives the kind
what a step needs from the run (:class:`~workflows.kinds.base.StepRun`): the variables of its
scope, the signal buffers `wait_for_signal` reads, checked values, the activity options built
from the step's timeout and retry policy, and nested scopes run by the interpreter.
Deterministic: time, ids and waits all come from the ``temporalio.workflow`` API. Errors
surface as :class:`StepFailed` (workflow-side) or Temporal's ``ActivityError``; the
interpreter decides what ``on_error`` does with them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from workflows import versions
    from workflows.deadline import Deadline
    from workflows.errors import (
        ConditionError,
        FailureType,
        StepFailed,
        TemplateError,
        ValueLimitError,
    )
    from workflows.flow.turns import AI_RATE_LIMITS, wait_for_turn
    from workflows.kinds import kind_of
    from workflows.kinds.base import Reuse, StepOutcome, Waiting
    from workflows.kinds.common import (
        ActivityMixin,
        StepBase,
        StepDefaults,
        effective_retry,
        effective_timeout,
        effective_total_timeout,
    )
    from workflows.kinds.http import idempotency_key
    from workflows.messages import (
        AIRequest,
        ExecutionLimits,
        LogWrite,
        StepRecord,
        StepRequest,
        request_key,
    )
    from workflows.mocking import CaseRunner
    from workflows.values import check_value

if TYPE_CHECKING:
    from workflows.shared import ExecutionInput

__all__ = [
    "StepOutcome",
    "Waiting",
    "WorkflowStepProcessor",
    "heartbeat_timeout",
    "idempotency_key",
]

# How long the server waits for a heartbeat before presuming a running step lost (its worker
# crashed or hung): a third of the step's timeout, between 2 and 10 seconds. Activities
# heartbeat every second, so a healthy step never comes close.
MIN_HEARTBEAT_TIMEOUT = timedelta(seconds=2)
MAX_HEARTBEAT_TIMEOUT = timedelta(seconds=10)


def heartbeat_timeout(step_timeout: timedelta) -> timedelta:
    third = max(step_timeout / 3, MIN_HEARTBEAT_TIMEOUT)
    return min(third, MAX_HEARTBEAT_TIMEOUT, step_timeout)


# Runs a nested list in a scope of its own (the interpreter's walk): what its steps bind.
RunScope = Callable[
    [Sequence[Any], Mapping[str, Any], dict[str, Any], str, int], Awaitable[dict[str, Any]]
]


class Scopes(Protocol):
    """What the interpreter runs for a step: nested lists of steps, concurrent jobs, and the
    run's AI spend."""

    def account(self, usage: dict[str, Any] | None, calls: int = 1, path: str = "") -> None: ...

    async def budget_gate(self, path: str) -> None: ...

    def release_budget(self, path: str) -> None: ...

    def check_budget_after(self) -> None: ...

    def adopt(
        self, records: Sequence[StepRecord], steps_done: int, written: bool = False
    ) -> None: ...

    def share_log(self, visits: int) -> tuple[LogWrite, int]: ...

    @property
    def run_scope(self) -> RunScope:
        """Runs a nested list (steps, variables, adds, path, ways) in a scope of its own."""
        ...

    def pay_for_child(
        self, variables: Mapping[str, Any], starts_more: bool, ways: int = 1
    ) -> int | None: ...

    def refund(self, variables: Mapping[str, Any], unused: int | None) -> None: ...

    def started_child(self, path: str, execution_id: str) -> None: ...

    async def run_concurrently(
        self, jobs: Sequence[Callable[[], Coroutine[Any, Any, Any]]], limit: int, fail_fast: bool
    ) -> list[Any]: ...


R = TypeVar("R")


class WorkflowStepProcessor:
    """Dispatches a step to its kind; holds the signal buffers that wait_for_signal reads."""

    def __init__(
        self,
        defaults: StepDefaults,
        execution_id: str,
        limits: ExecutionLimits | None = None,
        input: ExecutionInput | None = None,
    ) -> None:
        self._defaults = defaults
        self.execution_id = execution_id
        self.limits = limits
        self.input = input
        # How templates read a leading-zero index ({items.01}): the workflow sets it once per
        # run from a version marker (workflows/interpreter/patches.py).
        self.strict_indexes = True
        self.signals: dict[str, deque[Any]] = {}
        self.dropped_signals: dict[str, int] = {}
        self.waits: dict[str, Waiting] = {}  # step path -> what it waits for now
        # Which CEL evaluator the run's expressions use; the interpreter sets it once per run.
        self.cel_conformant = True
        # The run's deadline (the interpreter's; None for a processor on its own).
        self.deadline: Deadline | None = None
        # A test run's mocks and virtual clock (docs/testing.md); None for every other run.
        self.test: CaseRunner | None = None
        # Each step's activity options, worked out once a run (steps and defaults are frozen):
        # id(step) -> (the step, kept so its id is never reused, its label, the options).
        self._options: dict[int, tuple[ActivityMixin, str, dict[str, Any]]] = {}
        if input is not None and input.test is not None:
            self.test = CaseRunner(input.test, self.deliver_signal)

    @property
    def waiting(self) -> Waiting | None:
        """What the run waits for (the first wait when parallel branches wait at once)."""
        return next(iter(self.waits.values()), None)

    def deliver_raw(self, name: str, args: Sequence[RawValue]) -> None:
        """A signal as Temporal hands it. A payload that cannot be decoded is dropped, never
        raised: an exception in a signal handler would fail every workflow task of the run."""
        try:
            payload = workflow.payload_converter().from_payload(args[0].payload) if args else None
        except Exception as err:
            workflow.logger.warning("signal %r dropped: its payload cannot be read (%s)", name, err)
            return
        self.deliver_signal(name, payload)

    def deliver_signal(self, name: str, payload: Any) -> None:
        """Buffer a signal; past the run's buffer limit for that name it is dropped.

        The API refuses signals to a full buffer (429) before sending them; this is the
        backstop for signals sent straight to Temporal.
        """
        queue = self.signals.setdefault(name, deque())
        if self.limits is not None and len(queue) >= self.limits.max_buffered_signals:
            self.dropped_signals[name] = self.dropped_signals.get(name, 0) + 1
            return
        queue.append(payload)

    def checked(self, value: Any, where: str, amplified: bool = True) -> Any:
        """A value computed in the run: finite, not too deep, and (if built here) not too big."""
        if self.limits is not None:
            limit = self.limits.max_value_bytes if amplified else None
            check_value(value, where, limit)
        return value

    def set_waiting(self, path: str, waiting: Waiting | None, quiet: bool = False) -> None:
        """Record (or clear) a step's wait; the run's current details in the UI say it."""
        if waiting is None:
            self.waits.pop(path, None)
        else:
            self.waits[path] = waiting
            if self.deadline is not None and not quiet:
                self.deadline.expect(waiting.until - workflow.now() if waiting.until else None)
        if quiet:
            return
        shown = next(iter(self.waits.items()), None)
        if shown is None:
            workflow.set_current_details("")
            return
        step, wait = shown
        workflow.set_current_details(
            f"waiting for signal **{wait.signal}** (step `{step}`)"
            + (f" until {wait.until.isoformat(timespec='seconds')}" if wait.until else "")
        )

    async def execute(
        self,
        step: StepBase,
        variables: Mapping[str, Any],
        seq: int,
        path: str,
        scopes: Scopes,
        log: LogWrite | None = None,
    ) -> StepOutcome:
        """Run ``step``; given ``log``, the step's first activity writes those records."""
        run = self.view(path, seq, variables, scopes, log)
        try:
            outcome = await kind_of(step).execute(step, run)
            outcome.logged = run.logged
            return outcome
        except TemplateError as err:
            raise StepFailed(str(err), FailureType.INVALID_REFERENCE) from None
        except ConditionError as err:
            raise StepFailed(str(err), FailureType.INVALID_CONDITION) from None
        except ValueLimitError as err:
            raise StepFailed(f"step '{step.id}' {err}", FailureType.VALUE_TOO_LARGE) from None

    def view(
        self,
        path: str,
        seq: int,
        variables: Mapping[str, Any],
        scopes: Scopes,
        log: LogWrite | None = None,
    ) -> _Run:
        """What a step at ``path`` sees of the run (the StepRun its kind's execute gets)."""
        return _Run(self, scopes, path, seq, variables, log)

    def activity_options(self, step: ActivityMixin, label: str) -> dict[str, Any]:
        """The options of ``step``'s activities (a copy: callers add to it)."""
        known = self._options.get(id(step))
        if known is None or known[0] is not step or known[1] != label:
            known = (step, label, self._activity_options(step, label))
            self._options[id(step)] = known
        return dict(known[2])

    def _activity_options(self, step: ActivityMixin, label: str) -> dict[str, Any]:
        timeout = effective_timeout(step, self._defaults)
        retry = effective_retry(step, self._defaults)
        return {
            "start_to_close_timeout": timeout,
            "schedule_to_close_timeout": effective_total_timeout(step, self._defaults),
            "heartbeat_timeout": heartbeat_timeout(timeout),
            "retry_policy": RetryPolicy(
                maximum_attempts=retry.max_attempts or 1,
                initial_interval=timedelta(seconds=retry.initial_interval_seconds or 1),
                backoff_coefficient=retry.backoff_coefficient or 2.0,
                maximum_interval=timedelta(seconds=retry.max_interval_seconds or 30),
                non_retryable_error_types=list(retry.non_retryable_errors or []),
            ),
            # The workflow waits until the activity has really stopped before it writes the
            # cancelled log, so "cancelled" in the log means nothing is still running.
            "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            "summary": label,
        }


@dataclass
class _Run:
    """One step's view of the run (the StepRun a kind's execute gets)."""

    processor: WorkflowStepProcessor
    scopes: Scopes
    path: str
    seq: int
    variables: Mapping[str, Any]
    log: LogWrite | None  # the records the step's first activity carries (then None)
    logged: bool = False  # an activity of the step wrote the records it carried

    @property
    def execution_id(self) -> str:
        return self.processor.execution_id

    @property
    def input(self) -> ExecutionInput:
        assert self.processor.input is not None
        return self.processor.input

    @property
    def limits(self) -> ExecutionLimits | None:
        return self.processor.limits

    @property
    def strict_indexes(self) -> bool:
        return self.processor.strict_indexes

    @property
    def cel_conformant(self) -> bool:
        return self.processor.cel_conformant

    async def call_activity(
        self, activity: str, request: StepRequest, result_type: type[R], options: dict[str, Any]
    ) -> R:
        test = self.processor.test
        if test is not None:
            answer = test.answer(activity, request, self.path)
            if answer is not None:  # mocked: resolved here, no activity
                return result_type.model_validate(answer)  # type: ignore[attr-defined, no-any-return]
        if isinstance(request, AIRequest) and versions.patched(AI_RATE_LIMITS):
            timeout = options.get("start_to_close_timeout")
            request.rate_turn = await wait_for_turn(self._rate_wait, request, timeout)
        carried, self.log = self.log, None
        if carried is not None:
            request.log = carried
        deadline = self.processor.deadline
        if deadline is not None:
            options = deadline.bounded(options)
        try:
            with self.real_wait():  # a test run's clock holds while a real call is out
                result: R = await workflow.execute_activity(
                    activity, request, result_type=result_type, **options
                )
        except BaseException as err:
            self.log = carried  # the step's next call carries them (or a flush writes them)
            if isinstance(err, ActivityError) and deadline is not None and deadline.overran(err):
                await deadline.wait_for_the_end()
            raise
        finally:
            if isinstance(request, AIRequest) and request.rate_turn is not None:
                self._rate_wait(None)  # a turn the activity waited for (AI_TURN_LEAD) is over
        self.logged = self.logged or bool(getattr(result, "log_written", False))
        return result

    def _rate_wait(self, waiting: Waiting | None) -> None:
        self.processor.set_waiting(self.path, waiting, quiet=waiting is not None)

    def checked(self, value: Any, where: str, amplified: bool = True) -> Any:
        return self.processor.checked(value, where, amplified)

    def activity_options(self, step: ActivityMixin) -> dict[str, Any]:
        label = step.label if isinstance(step, StepBase) else self.path
        return self.processor.activity_options(step, label)

    def signal_queue(self, name: str) -> deque[Any]:
        return self.processor.signals.setdefault(name, deque())

    def expect_wait(self, longest: timedelta | None) -> None:
        if self.processor.deadline is not None:
            self.processor.deadline.expect(longest)

    def adopt(self, records: Sequence[StepRecord], steps_done: int, written: bool = False) -> None:
        self.scopes.adopt(records, steps_done, written)

    def share_log(self, visits: int) -> tuple[LogWrite, int]:
        return self.scopes.share_log(visits)

    def account(self, usage: dict[str, Any] | None, calls: int = 1) -> None:
        self.scopes.account(usage, calls, self.path)

    async def budget_gate(self) -> None:
        await self.scopes.budget_gate(self.path)

    def release_budget(self) -> None:
        self.scopes.release_budget(self.path)

    def check_budget_after(self) -> None:
        self.scopes.check_budget_after()

    def reused(self, kind: str, request: BaseModel | dict[str, Any]) -> Reuse | None:
        input = self.processor.input
        if input is None or not input.reuse:
            return None
        key = request_key(kind, request)
        hit = input.reuse.get(key)
        return None if hit is None else Reuse(hit.result, hit.source, key)

    def set_waiting(self, waiting: Waiting | None, quiet: bool = False) -> None:
        self.processor.set_waiting(self.path, waiting, quiet)

    @property
    def testing(self) -> bool:
        return self.processor.test is not None

    async def sleep(self, duration: timedelta, summary: str) -> None:
        test = self.processor.test
        if test is None:
            await workflow.sleep(duration, summary=summary)
        else:
            await test.clock.sleep(duration.total_seconds())

    async def wait_for_signal(
        self, arrived: Callable[[], bool], timeout: timedelta | None, signal: str
    ) -> None:
        test = self.processor.test
        if test is None:
            await workflow.wait_condition(
                arrived, timeout=timeout, timeout_summary=f"{signal} timeout"
            )
            return
        seconds = timeout.total_seconds() if timeout is not None else None
        await test.clock.wait(arrived, seconds, signal)

    def real_wait(self) -> AbstractContextManager[None]:
        test = self.processor.test
        return test.clock.holding() if test is not None else nullcontext()

    def mocked_child(self, path: str) -> dict[str, Any] | None:
        test = self.processor.test
        return test.child_outputs(path) if test is not None else None

    async def run_scope(
        self, steps: Sequence[Any], adds: dict[str, Any], path: str, ways: int = 1
    ) -> dict[str, Any]:
        return await self.scopes.run_scope(steps, self.variables, adds, path, ways)

    def pay_for_child(self, starts_more: bool, ways: int = 1) -> int | None:
        return self.scopes.pay_for_child(self.variables, starts_more, ways)

    def refund(self, unused: int | None) -> None:
        self.scopes.refund(self.variables, unused)

    def started_child(self, execution_id: str) -> None:
        self.scopes.started_child(self.path, execution_id)

    async def run_concurrently(
        self, jobs: Sequence[Callable[[], Coroutine[Any, Any, Any]]], limit: int, fail_fast: bool
    ) -> list[Any]:
        return await self.scopes.run_concurrently(jobs, limit, fail_fast)
