"""Controlling a running execution: cancel it, or deliver a signal (its rate, the run's
buffer and the awaiting step's ``payload_schema`` checked first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowExecutionDescription
from temporalio.service import RPCError, RPCStatusCode

from activities.runtime.settings import Settings
from api.server.auth import Action, Principal
from api.server.errors import ApiError
from api.server.executions.common import logger, temporal_status
from api.server.executions.reading import Reader
from api.server.limits import RateLimiter, retry_after_header
from api.server.schemas import AcceptedPublic
from api.server.status import SIGNAL_CHECK, query_view
from workflows.errors import Problem
from workflows.input_schema import VIOLATION, value_problems_async
from workflows.messages import CANCEL_SIGNAL, CancelRequest, ExecutionView

_UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


@dataclass
class Controller:
    """Cancels and signals running executions in the key's scope (a role that may control)."""

    reader: Reader
    settings: Settings
    signal_limiter: RateLimiter | None = None

    async def cancel(self, execution_id: str, reason: str, principal: Principal) -> AcceptedPublic:
        handle, description = await self.reader.describe(execution_id, principal)
        principal.require(Action.CONTROL, "cancel executions")
        _require_running(execution_id, description)
        request = CancelRequest(reason=reason, requested_by=principal.name)
        # The signal records who asked and why; Temporal's own cancellation then closes the
        # run as Canceled in the UI. The workflow handles either arriving first, so a signal
        # Temporal refuses (the run is at its signal limit) does not stop the cancel.
        try:
            await handle.signal(CANCEL_SIGNAL, request)
        except RPCError as err:
            if err.status in _UNREACHABLE:
                raise
            logger.warning("cancel signal to %s refused (%s); cancelling anyway", execution_id, err)
        try:
            await handle.cancel(reason=reason)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        return AcceptedPublic(execution_id=execution_id, status="cancelling")

    async def signal(
        self, execution_id: str, name: str, payload: Any, principal: Principal
    ) -> AcceptedPublic:
        handle, description = await self.reader.describe(execution_id, principal)
        principal.require(Action.CONTROL, "signal executions")
        _require_running(execution_id, description)
        self._check_rate(principal)
        state = await query_view(handle, SIGNAL_CHECK)
        if state is not None:
            self._check_buffer(state, execution_id, name)
            if state.waiting_for == name and state.waiting_payload_schema:
                await _check_payload(state.waiting_payload_schema, payload, name)
        try:
            await handle.signal(name, payload)
        except RPCError as err:
            if err.status in _UNREACHABLE:
                raise
            # Temporal's own per-execution limits (history.maximumSignalsPerExecution).
            raise ApiError(
                429,
                "signal_refused",
                f"Temporal refused the signal to '{execution_id}': {err.message}; cancel still "
                "works",
            ) from None
        return AcceptedPublic(
            execution_id=execution_id,
            status="delivered",
            signal=name,
            errors=_not_waiting(state, execution_id, name),
        )

    def _check_rate(self, principal: Principal) -> None:
        if self.signal_limiter is None:
            return
        wait = self.signal_limiter.check(principal.name)
        if wait > 0:
            raise ApiError(
                429,
                "signal_rate_limited",
                f"too many signals from key '{principal.name}' (API_SIGNAL_RATE_PER_MINUTE="
                f"{self.settings.api_signal_rate_per_minute:g}); retry after {wait:.1f}s",
                headers={"Retry-After": retry_after_header(wait)},
            )

    def _check_buffer(self, state: ExecutionView, execution_id: str, name: str) -> None:
        limit = self.settings.signal_buffer_max
        if state.buffered_signals.get(name, 0) >= limit:
            raise ApiError(
                429,
                "signal_buffer_full",
                f"execution '{execution_id}' already holds {limit} unread '{name}' signals "
                f"(SIGNAL_BUFFER_MAX); it reads them only in a wait_for_signal step",
                headers={"Retry-After": "10"},
            )


def _require_running(execution_id: str, description: WorkflowExecutionDescription) -> None:
    t_status, status = temporal_status(description.status)
    if t_status != "RUNNING":
        raise ApiError(
            409,
            "execution_not_running",
            f"execution '{execution_id}' has already finished ({status}); nothing changed",
        )


async def _check_payload(schema: dict[str, Any], payload: Any, name: str) -> None:
    """A payload the awaiting step's `payload_schema` refuses is never sent: 422 naming
    every problem, and the run keeps waiting for a good one."""
    problems = await value_problems_async(schema, payload, "$")
    if problems:
        raise ApiError.from_problems(
            422,
            [
                Problem(
                    problem.path,
                    f"the '{name}' payload does not fit the step's payload_schema: "
                    f"{problem.message}",
                    "invalid_payload" if problem.code == VIOLATION else problem.code,
                )
                for problem in problems
            ],
        )


def _not_waiting(state: ExecutionView | None, execution_id: str, name: str) -> list[dict[str, str]]:
    """The warning for a signal delivered while no step waits for it (it is buffered)."""
    if state is None or state.waiting_for == name:
        return []
    awaited = (
        f"waits for '{state.waiting_for}'"
        if state.waiting_for
        else "is not waiting for a signal now"
    )
    return [
        {
            "code": "not_waiting",
            "message": f"delivered and buffered, but execution '{execution_id}' "
            f"{awaited}; a later wait_for_signal step on '{name}' will read it",
        }
    ]
