"""Shared rate limits on the worker's side: AI_RATE_LIMITS and HTTP_HOST_CONCURRENCY.

The limits live in limiter workflows (workflows/flow/limiters.py), one per limited resource,
so every worker and every run share them; this module asks them for turns and permits. A run
asks for its AI call's turn before scheduling it (the ``reserve_ai_turn`` local activity,
then a timer until shortly before it); the activity's first attempt waits for that turn and
takes it, and a retry (or an attempt that starts more than LATE_SECONDS after its turn) asks
for a new one and waits for it here, heartbeating `{"waiting_for": "rate_limit"}`. An `http`
call to a limited host holds one of its permits while in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.runtime.settings import AIRateLimit, Settings
from activities.runtime.temporal_client import start_outcome_seen
from workflows.flow.messages import (
    ACQUIRE_UPDATE,
    IN_FLIGHT_LIMITER,
    RELEASE_PERMIT_SIGNAL,
    RESERVE_AI_TURN,
    RESERVE_UPDATE,
    SETTLE_SIGNAL,
    WAITING_RATE_LIMIT,
    WINDOW_LIMITER,
    AcquireRequest,
    AITurnRequest,
    InFlightState,
    ReserveRequest,
    SettleRequest,
    Turn,
    WindowState,
    limiter_id,
)
from workflows.messages import AIRequest, RateTurn

# A turn used later than this is no longer safe to use (the next window may be full then):
# the call asks for a new one. Turns keep a one-second margin (limiters.WINDOW) for it.
LATE_SECONDS = 0.5
# Asking a limiter that is just continuing as new (or ending) is refused: ask again.
ASK_ATTEMPTS = 5
# Temporal takes about ten updates in flight per workflow (history.maxInFlightUpdates) and
# refuses more; each worker sends at most this many at once to one limiter, the rest wait here.
IN_FLIGHT_PER_WORKER = 3
# The error of a turn not asked for because the limiter is busy (retryable).
BUSY = "LimiterBusy"


def matching_pattern(model: str, patterns: dict[str, AIRateLimit]) -> str | None:
    """The AI_RATE_LIMITS entry a model counts under: its own name, else the longest prefix
    ending in `*` that it starts with."""
    if model in patterns:
        return model
    prefixes = [p for p in patterns if p.endswith("*") and model.startswith(p[:-1])]
    return max(prefixes, key=len) if prefixes else None


def host_key(url: str, limits: dict[str, int]) -> str | None:
    """The HTTP_HOST_CONCURRENCY entry a URL counts under: host:port, else the host."""
    parsed = httpx.URL(url)
    host = (parsed.host or "").lower()
    with_port = f"{host}:{parsed.port}" if parsed.port else None
    if with_port is not None and with_port in limits:
        return with_port
    return host if host in limits else None


@dataclass
class RateLimits:
    """Turns and permits from the limiter workflows on ``task_queue``."""

    client: Client
    task_queue: str
    ai: dict[str, AIRateLimit] = field(default_factory=dict)
    hosts: dict[str, int] = field(default_factory=dict)
    window_seconds: float = 60.0
    _asking: dict[str, asyncio.Semaphore] = field(default_factory=dict, init=False, repr=False)

    def _gate(self, limiter: str) -> asyncio.Semaphore:
        return self._asking.setdefault(limiter, asyncio.Semaphore(IN_FLIGHT_PER_WORKER))

    @classmethod
    def from_settings(cls, client: Client, settings: Settings) -> RateLimits:
        return cls(
            client,
            settings.temporal_task_queue,
            settings.ai_rate_limits,
            settings.http_host_concurrency,
            settings.rate_limit_window_seconds,
        )

    # -- AI calls -------------------------------------------------------------------------

    @activity.defn(name=RESERVE_AI_TURN)
    async def reserve_ai_turn(self, request: AITurnRequest) -> RateTurn | None:
        """Local activity: the turn of a call the run is about to schedule (None: no limit)."""
        pattern = matching_pattern(request.model, self.ai)
        if pattern is None:
            return None
        # It does not wait for the others to be answered: a local activity holds its run's
        # workflow task, and a worker runs a bounded number of workflow tasks at once. In a
        # burst, runs waiting here would hold them all, and the limiter, whose workflow task
        # answers them, could not run. The run asks again after a timer.
        return await self._reserve(pattern, request.tokens, request.request_id, queue=False)

    async def ai_turn(self, request: AIRequest, tokens: int) -> RateTurn | None:
        """In the activity, before the provider is called: wait for the call's turn."""
        pattern = matching_pattern(request.model, self.ai)
        if pattern is None:
            return None
        turn = request.rate_turn
        first = activity.info().attempt == 1
        while turn is None or not first or _late(turn):
            first = True  # a new turn is used as it comes
            turn = await self._reserve(pattern, tokens, str(uuid.uuid4()))
        await _wait_until(turn)  # a call scheduled ahead of its turn waits for it here
        return turn

    async def settle(self, turn: RateTurn | None, tokens: int | None) -> None:
        """After the call: the tokens the provider counted replace the estimate."""
        if turn is None or tokens is None or self.ai[turn.resource].tokens_per_minute is None:
            return
        handle = self.client.get_workflow_handle(limiter_id("ai", turn.resource))
        with contextlib.suppress(RPCError):  # the estimate stands
            await handle.signal(
                SETTLE_SIGNAL, SettleRequest(request_id=turn.request_id, tokens=tokens)
            )

    async def _reserve(
        self, pattern: str, tokens: int, request_id: str, queue: bool = True
    ) -> RateTurn:
        """The turn of ``request_id`` (the limiter answers a repeated request with the same
        turn). Not ``queue``: give up at once (LimiterBusy, retryable) while this worker has
        IN_FLIGHT_PER_WORKER requests out to the limiter."""
        limit = self.ai[pattern]
        request = ReserveRequest(
            request_id=request_id,
            tokens=tokens,
            requests_per_minute=limit.requests_per_minute,
            tokens_per_minute=limit.tokens_per_minute,
            window_seconds=self.window_seconds,
        )
        for attempt in range(ASK_ATTEMPTS):
            # A with-start operation is used once: a new one each time.
            start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                WINDOW_LIMITER,
                WindowState(resource=pattern),
                id=limiter_id("ai", pattern),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary=f"rate limit: {pattern}",
            )
            gate = self._gate(limiter_id("ai", pattern))
            if not queue and gate.locked():
                raise ApplicationError("the rate limiter is busy: ask again", type=BUSY)
            await gate.acquire()
            try:
                turn = await self.client.execute_update_with_start_workflow(
                    RESERVE_UPDATE, request, start_workflow_operation=start, result_type=Turn
                )
                return RateTurn(resource=pattern, request_id=request_id, at=turn.at)
            except (RPCError, WorkflowUpdateFailedError):
                await start_outcome_seen(start)
                if attempt == ASK_ATTEMPTS - 1:
                    raise
            finally:
                gate.release()
            await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- HTTP hosts -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def host_permit(self, url: str) -> AsyncIterator[None]:
        """Hold one of the host's permits while the request is in flight."""
        host = host_key(url, self.hosts) if self.hosts else None
        if host is None:
            yield
            return
        request_id = str(uuid.uuid4())
        await self._acquire(host, request_id)
        try:
            yield
        finally:
            handle = self.client.get_workflow_handle(limiter_id("host", host))
            with contextlib.suppress(RPCError):  # the lease ends it anyway
                await handle.signal(RELEASE_PERMIT_SIGNAL, request_id)

    async def _acquire(self, host: str, request_id: str) -> None:
        info = activity.info()
        lease = (info.start_to_close_timeout or timedelta(minutes=5)).total_seconds()
        request = AcquireRequest(request_id=request_id, limit=self.hosts[host], lease_seconds=lease)
        while True:
            start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
                IN_FLIGHT_LIMITER,
                InFlightState(resource=host),
                id=limiter_id("host", host),
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                static_summary=f"in flight: {host}",
            )
            activity.heartbeat({"waiting_for": WAITING_RATE_LIMIT, "host": host})
            gate = self._gate(limiter_id("host", host))
            try:
                async with asyncio.timeout(1.0):  # heartbeat while other calls ask
                    await gate.acquire()
            except TimeoutError:
                continue
            try:
                granted = await self.client.execute_update_with_start_workflow(
                    ACQUIRE_UPDATE, request, start_workflow_operation=start, result_type=bool
                )
            except (RPCError, WorkflowUpdateFailedError):
                await start_outcome_seen(start)
                granted = False
                await asyncio.sleep(0.2)
            finally:
                gate.release()
            if granted:
                return


def _late(turn: RateTurn) -> bool:
    return datetime.now(UTC) > turn.at + timedelta(seconds=LATE_SECONDS)


async def _wait_until(turn: RateTurn) -> None:
    """Sleep until the turn, heartbeating (cancellable) with what the call waits for."""
    details: dict[str, Any] = {"waiting_for": WAITING_RATE_LIMIT, "until": turn.at.isoformat()}
    while (left := (turn.at - datetime.now(UTC)).total_seconds()) > 0:
        activity.heartbeat(details)
        await asyncio.sleep(min(left, 1.0))
