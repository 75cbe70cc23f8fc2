"""ConcurrencyGate: a run's side of its concurrency key (workflows/flow/coordinator.py).

Before its first step the run asks its key's coordinator for a place and waits, visible as
``waiting_for: "concurrency"`` and cancellable, for the grant; when it ends, however it ends,
it hands the place (or its turn in the queue) back. A continued run keeps the place it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import versions
    from workflows.flow.messages import (
        RELEASE_SIGNAL,
        REQUEST_PLACE,
        WAITING_CONCURRENCY,
        ConcurrencyClaim,
        PlaceRelease,
        RequestPlace,
    )
    from workflows.kinds.base import Waiting
    from workflows.steps import WorkflowStepProcessor

# The version marker of a quicker hand-off of the place: a run that waits writes its log while
# it waits (not once granted, before its first step), and a run that ends hands its place back
# before its last log writes (older runs wrote the last step's record, then the final log with
# the release alongside: the release left with the workflow task, after both writes).
QUICK_HAND_OFF = "concurrency-quick-hand-off"
# The wait's entry in the run's waits (no step has this path: it has brackets).
_WAIT_PATH = "[concurrency]"
# Asking for a place retries until Temporal answers (the run waits either way, cancellable).
_REQUEST_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)


class ConcurrencyGate:
    """Asks for a place, waits for it, hands it back."""

    def __init__(
        self,
        claim: ConcurrencyClaim,
        execution_id: str,
        workflow_id: str,
        held: bool,
        started_at: datetime | None = None,
    ):
        self.claim = claim
        self._started_at = started_at
        self._execution_id = execution_id
        self._workflow_id = workflow_id
        self.held = held
        self._asked = held
        self._granted = held
        self._quick: bool | None = None  # QUICK_HAND_OFF, asked once

    @property
    def quick(self) -> bool:
        """Whether the run hands its place on the quick way (QUICK_HAND_OFF)."""
        if self._quick is None:
            self._quick = versions.patched_since_settled(QUICK_HAND_OFF)
        return self._quick

    @property
    def hands_off_first(self) -> bool:
        """The place goes back before the run's last log writes (QUICK_HAND_OFF), so the
        last step's record waits for the final write instead of a write of its own."""
        return self.held and self.quick

    def grant(self) -> None:
        """The coordinator's ``concurrency_grant`` signal."""
        self._granted = True

    async def enter(
        self, processor: WorkflowStepProcessor, write_log: Callable[[], Awaitable[None]]
    ) -> None:
        """Wait for a place (at once if one is free, or if the run holds one already).
        ``write_log``: what the run writes before its first step (the log's creation), done
        while it waits, so a granted run starts its first step in the task the grant wakes."""
        if self.held:
            return
        quick = self.quick
        self._asked = True
        granted_now = await workflow.execute_local_activity(
            REQUEST_PLACE,
            RequestPlace(
                claim=self.claim,
                workflow_id=self._workflow_id,
                execution_id=self._execution_id,
                started_at=self._started_at,
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=_REQUEST_RETRY,
            summary="ask for a concurrency place",
            result_type=bool,
        )
        self._granted = self._granted or granted_now
        if not self._granted:
            processor.set_waiting(_WAIT_PATH, Waiting(signal=WAITING_CONCURRENCY), quiet=True)
            workflow.set_current_details(
                f"waiting for a place: concurrency key `{self.claim.key}`, limit {self.claim.limit}"
            )
            try:
                if quick:
                    await write_log()
                await workflow.wait_condition(lambda: self._granted)
            except asyncio.CancelledError:  # not `finally`: an evicted run must not run it
                processor.set_waiting(_WAIT_PATH, None)
                raise
            processor.set_waiting(_WAIT_PATH, None)
        self.held = True

    async def released_with(self, final_write: Coroutine[Any, Any, bool]) -> bool:
        """Hand the place back, then write the run's final log (the next run need not wait
        for the write); True if Temporal's cancel arrived during either.

        A local activity holds its run's workflow task open, and the release signal leaves
        only when that task completes: sent alongside the write, it waited for the write.
        Sent first (QUICK_HAND_OFF), it leaves at once; the run's task that sees it delivered
        is the one that writes (as many tasks as before)."""
        if self._asked and self.quick:
            try:
                cancelled = await self.leave()
            except BaseException:  # e.g. the run evicted from the cache: the write never starts
                final_write.close()
                raise
            return await final_write or cancelled
        leaving = self.leave_soon()
        cancelled = await final_write
        if leaving is not None:
            try:
                cancelled = await asyncio.shield(leaving) or cancelled
            except asyncio.CancelledError:  # the signal is sent: its receipt need not be seen
                cancelled = True
        return cancelled

    def leave_soon(self) -> asyncio.Task[bool] | None:
        """Start handing the place back (the run's last log write goes on meanwhile: the
        signal leaves with it, and the run need not wait for Temporal's receipt first)."""
        return asyncio.create_task(self.leave()) if self._asked else None

    async def leave(self) -> bool:
        """Hand the place (or the turn) back. True if Temporal's cancel arrived meanwhile
        (the signal is sent again: a cancel must not keep a place held)."""
        if not self._asked:
            return False
        cancelled = False
        handle = workflow.get_external_workflow_handle(self.claim.coordinator_id)
        release = PlaceRelease(execution_id=self._execution_id)
        for _ in range(2):
            try:
                await handle.signal(RELEASE_SIGNAL, release)
                break
            except asyncio.CancelledError:
                cancelled = True
            except Exception as err:  # no coordinator: it ended empty, nothing is held
                workflow.logger.info("concurrency place not handed back: %s", err)
                break
        self.held = False
        return cancelled
