"""WorkflowStepProcessor: runs one step of a definition inside the workflow.

Pure steps (`set`, `condition`, `fail`) are computed here; `delay` is a Temporal timer,
`wait_for_signal` a condition on buffered signals, and `ai` / `http` are activities with the
step's own timeout and retry policy. Deterministic: time, ids and waits all come from the
``temporalio.workflow`` API. Errors surface as :class:`StepFailure` (workflow-side) or
Temporal's ``ActivityError``; the interpreter decides what ``on_error`` does with them.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows.conditions import evaluate_condition, evaluate_expression
    from workflows.definition import (
        ActivityStep,
        AIStep,
        ConditionStep,
        DelayStep,
        FailStep,
        HTTPStep,
        SetStep,
        Step,
        StepDefaults,
        WaitForSignalStep,
        effective_retry,
        effective_timeout,
        effective_total_timeout,
    )
    from workflows.errors import (
        ConditionError,
        FailureType,
        StepFailure,
        TemplateError,
    )
    from workflows.shared import (
        CALL_LLM,
        SEND_HTTP_REQUEST,
        AIRequest,
        AIResult,
        DeferredSlotModel,
        ExecutionLimits,
        HTTPRequest,
        HTTPResult,
        LogWrite,
    )
    from workflows.templating import (
        DeferredSlot,
        Reference,
        VariableSubstitutor,
        to_text,
        tokenize,
    )
    from workflows.values import ValueLimitError, check_value

# How long the server waits for a heartbeat before presuming a running step lost (its worker
# crashed or hung): a third of the step's timeout, between 2 and 10 seconds. Activities
# heartbeat every second, so a healthy step never comes close.
MAX_DELAY_SECONDS = 366 * 86400  # as the definition's own `seconds` allows
MIN_HEARTBEAT_TIMEOUT = timedelta(seconds=2)
MAX_HEARTBEAT_TIMEOUT = timedelta(seconds=10)


def heartbeat_timeout(step_timeout: timedelta) -> timedelta:
    third = max(step_timeout / 3, MIN_HEARTBEAT_TIMEOUT)
    return min(third, MAX_HEARTBEAT_TIMEOUT, step_timeout)


@dataclass
class StepOutcome:
    """What a finished step binds and where the flow goes (None: the following step)."""

    output_vars: dict[str, Any] = field(default_factory=dict)
    next_target: str | None = None
    usage: dict[str, Any] | None = None
    logged: bool = False  # the step's activity wrote the log records it carried


@dataclass(frozen=True)
class Waiting:
    """A wait on the outside world: the signal's name, and when the wait times out."""

    signal: str
    until: datetime | None = None


class WorkflowStepProcessor:
    """Dispatches a step by type; holds the signal buffers that wait_for_signal reads."""

    def __init__(
        self, defaults: StepDefaults, execution_id: str, limits: ExecutionLimits | None = None
    ) -> None:
        self._defaults = defaults
        self._execution_id = execution_id
        self._limits = limits
        self.signals: dict[str, deque[Any]] = {}
        self.dropped_signals: dict[str, int] = {}
        self.waiting: Waiting | None = None  # what a wait_for_signal step waits for now

    def deliver_signal(self, name: str, payload: Any) -> None:
        """Buffer a signal; past the run's buffer limit for that name it is dropped.

        The API refuses signals to a full buffer (429) before sending them; this is the
        backstop for signals sent straight to Temporal.
        """
        queue = self.signals.setdefault(name, deque())
        if self._limits is not None and len(queue) >= self._limits.max_buffered_signals:
            self.dropped_signals[name] = self.dropped_signals.get(name, 0) + 1
            return
        queue.append(payload)

    def _checked(self, value: Any, where: str, amplified: bool = True) -> Any:
        """A value computed in the run: finite, not too deep, and (if built here) not too big."""
        if self._limits is not None:
            limit = self._limits.max_value_bytes if amplified else None
            check_value(value, where, limit)
        return value

    async def execute(
        self, step: Step, context: Mapping[str, Any], seq: int, log: LogWrite | None = None
    ) -> StepOutcome:
        """Run ``step``; an activity step given ``log`` has its activity write those records."""
        try:
            if isinstance(step, SetStep):
                return self._set(step, context)
            if isinstance(step, ConditionStep):
                return self._condition(step, context)
            if isinstance(step, FailStep):
                message = VariableSubstitutor(context).render_text(step.message)
                raise StepFailure(message, FailureType.WORKFLOW_FAILED)
            if isinstance(step, DelayStep):
                await self._delay(step, context)
                return StepOutcome(next_target=step.next)
            if isinstance(step, WaitForSignalStep):
                return await self._wait_for_signal(step)
            if isinstance(step, AIStep):
                return await self._ai(step, context, log)
            if isinstance(step, HTTPStep):
                return await self._http(step, context, seq, log)
        except TemplateError as err:
            raise StepFailure(str(err), FailureType.INVALID_REFERENCE) from None
        except ConditionError as err:
            raise StepFailure(str(err), FailureType.INVALID_CONDITION) from None
        except ValueLimitError as err:
            raise StepFailure(f"step '{step.id}' {err}", FailureType.VALUE_TOO_LARGE) from None
        raise StepFailure(f"unsupported step type {step.type!r}", FailureType.INVALID_REQUEST)

    # -- workflow-side steps -------------------------------------------------------------

    def _set(self, step: SetStep, context: Mapping[str, Any]) -> StepOutcome:
        values = VariableSubstitutor(context).render(dict(step.values))
        for name, value in values.items():
            # A whole reference ("{x}") binds a value the run already holds: not new data.
            self._checked(
                value, f"values.{name}", amplified=not _whole_reference(step.values[name])
            )
        variables = {k: v for k, v in context.items() if k != "secrets"}
        for name, expression in step.compute.items():
            values[name] = self._checked(
                evaluate_expression(expression, variables), f"compute.{name}"
            )
        return StepOutcome(output_vars=values, next_target=step.next)

    def _condition(self, step: ConditionStep, context: Mapping[str, Any]) -> StepOutcome:
        variables = {k: v for k, v in context.items() if k != "secrets"}
        for branch in step.branches:
            if evaluate_condition(branch.when, variables):
                return StepOutcome(next_target=branch.next)
        return StepOutcome(next_target=step.default)

    async def _delay(self, step: DelayStep, context: Mapping[str, Any]) -> None:
        substitutor = VariableSubstitutor(context)
        if step.seconds is not None:
            raw = substitutor.render(step.seconds)
            try:
                seconds = float(raw)
            except (TypeError, ValueError, OverflowError):
                raise StepFailure(
                    f"delay seconds must be a number, got {raw!r}", FailureType.INVALID_REQUEST
                ) from None
            if not math.isfinite(seconds) or not 0 <= seconds <= MAX_DELAY_SECONDS:
                raise StepFailure(
                    f"delay seconds must be between 0 and {MAX_DELAY_SECONDS:g} (one year), "
                    f"got {raw!r}",
                    FailureType.INVALID_REQUEST,
                )
        else:
            text = substitutor.render_text(step.until or "")
            try:
                until = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise StepFailure(
                    f"delay until must be an ISO 8601 timestamp, got {text!r}",
                    FailureType.INVALID_REQUEST,
                ) from None
            if until.tzinfo is None:
                raise StepFailure(
                    f"delay until {text!r} has no time zone; add Z or an offset",
                    FailureType.INVALID_REQUEST,
                )
            seconds = (until - workflow.now()).total_seconds()
            if seconds > MAX_DELAY_SECONDS:
                raise StepFailure(
                    f"delay until {text!r} is more than a year away", FailureType.INVALID_REQUEST
                )
        if seconds > 0:
            await workflow.sleep(timedelta(seconds=seconds), summary=step.label)

    async def _wait_for_signal(self, step: WaitForSignalStep) -> StepOutcome:
        queue = self.signals.setdefault(step.signal, deque())
        timeout = timedelta(seconds=step.timeout_seconds) if step.timeout_seconds else None
        until = workflow.now() + timeout if timeout is not None else None
        self.waiting = Waiting(step.signal, until)
        workflow.set_current_details(
            f"waiting for signal **{step.signal}** (step `{step.id}`)"
            + (f" until {until.isoformat(timespec='seconds')}" if until else "")
        )
        try:
            await workflow.wait_condition(
                lambda: bool(queue), timeout=timeout, timeout_summary=f"{step.signal} timeout"
            )
        except TimeoutError:
            self._stop_waiting()
            raise StepFailure(
                f"no '{step.signal}' signal arrived within {step.timeout_seconds:g}s",
                FailureType.SIGNAL_TIMEOUT,
            ) from None
        finally:
            # Not the details: a run torn down from the worker's cache runs this outside
            # the workflow's event loop, where no workflow call is allowed.
            self.waiting = None
        self._stop_waiting()
        payload = self._checked(queue.popleft(), f"signal '{step.signal}' payload")
        outputs = {step.output: payload} if step.output else {}
        return StepOutcome(output_vars=outputs, next_target=step.next)

    def _stop_waiting(self) -> None:
        self.waiting = None
        workflow.set_current_details("")

    # -- activity steps --------------------------------------------------------------------

    async def _ai(
        self, step: AIStep, context: Mapping[str, Any], log: LogWrite | None
    ) -> StepOutcome:
        substitutor = VariableSubstitutor(context)
        fields: dict[str, Any] = {"model": step.model}
        if step.messages is not None:
            fields["messages"] = [m.model_dump() for m in step.messages]
        else:
            fields["messages"] = [{"role": "user", "content": step.prompt}]
        rendered, slots = substitutor.render_deferred(fields)
        response_format = (
            step.response_format.model_dump(by_alias=True) if step.response_format else None
        )
        request = AIRequest(
            execution_id=self._execution_id,
            step_id=step.id,
            model=str(rendered["model"]),
            messages=rendered["messages"],
            temperature=step.temperature,
            max_tokens=step.max_tokens,
            response_format=response_format,
            deferred=_slot_models(slots),
            log=log,
        )
        result: AIResult = await workflow.execute_activity(
            CALL_LLM, request, result_type=AIResult, **self._activity_options(step)
        )
        outputs = {step.output: result.as_output()} if step.output else {}
        return StepOutcome(
            output_vars=outputs,
            next_target=step.next,
            usage=result.usage_record(),
            logged=result.log_written,
        )

    async def _http(
        self, step: HTTPStep, context: Mapping[str, Any], seq: int, log: LogWrite | None
    ) -> StepOutcome:
        substitutor = VariableSubstitutor(context)
        fields = {
            "url": step.url,
            "headers": dict(step.headers),
            "query": dict(step.query),
            "json": step.json_body,
            "body": step.body,
        }
        rendered, slots = substitutor.render_deferred(fields)
        expect = step.expect_status
        request = HTTPRequest(
            execution_id=self._execution_id,
            step_id=step.id,
            method=step.method,
            url=to_text(rendered["url"]),
            headers={str(k): to_text(v) for k, v in rendered["headers"].items()},
            query=rendered["query"],
            json_body=rendered["json"],
            has_json=step.json_body is not None,
            body=None if rendered["body"] is None else to_text(rendered["body"]),
            expect_status=[expect] if isinstance(expect, int) else expect,
            idempotency_key=idempotency_key(self._execution_id, step.id, seq),
            deferred=_slot_models(slots),
            log=log,
        )
        result: HTTPResult = await workflow.execute_activity(
            SEND_HTTP_REQUEST, request, result_type=HTTPResult, **self._activity_options(step)
        )
        outputs = {step.output: result.as_output()} if step.output else {}
        return StepOutcome(output_vars=outputs, next_target=step.next, logged=result.log_written)

    def _activity_options(self, step: ActivityStep) -> dict[str, Any]:
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
            "summary": step.label,
        }


def _whole_reference(template: Any) -> bool:
    """True for a template that is exactly one reference, such as ``"{order}"``."""
    if not isinstance(template, str):
        return False
    tokens = tokenize(template)
    return len(tokens) == 1 and isinstance(tokens[0], Reference)


def idempotency_key(execution_id: str, step_id: str, seq: int) -> str:
    """Stable across retries of one step visit; distinct for each visit of a loop."""
    digest = hashlib.sha256(f"{execution_id}\x1f{step_id}\x1f{seq}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def _slot_models(slots: list[DeferredSlot]) -> list[DeferredSlotModel]:
    return [DeferredSlotModel(location=s.location, parts=s.parts) for s in slots]
