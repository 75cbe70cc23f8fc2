"""ConcurrencyCoordinator: one workflow per (workflow id, key) that grants places in start order.

Runs ask for a place by update-with-start (a local activity of the run, so the coordinator
exists once anyone asks): the answer says whether the place is theirs at once; if not, they
wait for the ``concurrency_grant`` signal. They hand the place back by signal when they end,
however they end (completed, failed, cancelled). A run that Temporal
terminates runs no code of ours, so the coordinator also checks, while others wait, that its
holders still run. Everything it knows is in its history: a worker or server restart loses no
place and grants none twice. It continues as new when its history grows, and ends once no run
holds or waits for IDLE_SECONDS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows import versions
    from workflows.flow.messages import (
        CLOSED_EXECUTIONS,
        CONCURRENCY_COORDINATOR,
        GRANT_SIGNAL,
        PLACE_QUERY,
        PLACE_SIGNAL,
        PLACE_UPDATE,
        RELEASE_SIGNAL,
        STATE_QUERY,
        ClosedExecutions,
        CoordinatorState,
        PlaceRelease,
        PlaceRequest,
    )

# While runs wait, how often the holders are checked for runs Temporal closed without our code
# (terminate, a Temporal-side timeout): such a place is freed within this long.
LIVENESS_SECONDS = 5.0
# ... and the first this many in the queue (further back, a closed run is dropped when its
# grant fails).
QUEUE_HEAD_CHECKED = 10
# The version marker of telling by signal a run whose place an update gave while the run,
# whose update had timed out, waited for a grant signal (older coordinators answered only the
# update, and such a run waited forever while its place was held for it).
LATE_ANSWERS_SIGNALLED = "concurrency-late-answers-signalled"
# The version marker of one liveness timer per LIVENESS_SECONDS while runs wait (older
# coordinators started a timer and cancelled it in every workflow task, two more events and
# more work for each request and release).
ONE_LIVENESS_TIMER = "concurrency-one-liveness-timer"
# An empty coordinator ends after this long (the next request starts a fresh one).
IDLE_SECONDS = 60.0
# Continue as new past this many history events (well under Temporal's warning at 10,240),
# so a replay of the coordinator stays short.
MAX_HISTORY_EVENTS = 4000
# ... and past this many updates (Temporal refuses more than 2,000 in one run).
MAX_UPDATES = 1000


@workflow.defn(name=CONCURRENCY_COORDINATOR)
class ConcurrencyCoordinator:
    """Holds the places and the queue of one key; grants places in the order asked."""

    @workflow.init
    def __init__(self, state: CoordinatorState) -> None:
        self._state = state
        # Insertion-ordered: the queue's order is the order requests arrived.
        self._holders: dict[str, None] = dict.fromkeys(state.holders)
        started = state.queue_started or [None] * len(state.queue)
        self._queue: dict[str, datetime | None] = dict(zip(state.queue, started, strict=True))
        self._regrant: set[str] = set()
        self._limit = state.limit
        self._answered = 0  # updates this run (Temporal takes a bounded number per run)
        self._sending = 0  # grant signals not yet received
        self._ticking: asyncio.Task[None] | None = None  # the liveness timer (ONE_LIVENESS_TIMER)
        self._check_due = False

    @workflow.signal(name=PLACE_SIGNAL)
    def request(self, request: PlaceRequest) -> None:
        self._limit = request.limit  # the latest version of the definition says
        if request.execution_id in self._holders:
            self._regrant.add(request.execution_id)  # asked again (a retried request)
        elif request.execution_id not in self._queue:
            self._enqueue(request.execution_id, request.started_at)

    def _enqueue(self, execution_id: str, started_at: datetime | None) -> None:
        """Into the queue in start order (requests of runs started together may arrive in
        any order); a request that does not say goes last."""
        last = next(reversed(self._queue.values()), None) if self._queue else None
        if started_at is None or last is None or last <= started_at:
            self._queue[execution_id] = started_at
            return
        entries = list(self._queue.items())
        at = next(
            i for i, (_, when) in enumerate(entries) if when is not None and when > started_at
        )
        entries.insert(at, (execution_id, started_at))
        self._queue = dict(entries)

    @workflow.update(name=PLACE_UPDATE)
    def request_now(self, request: PlaceRequest) -> bool:
        """The request, answered: True if the run holds a place now, False if it waits in
        the queue (a grant signal will come). A run that asked before (by signal, after its
        update timed out) may no longer await this answer: it is told by signal too."""
        execution_id = request.execution_id
        asked_before = execution_id in self._holders or execution_id in self._queue
        self.request(request)
        self._answered += 1
        if execution_id in self._holders:
            if not (asked_before and self._tells_late_answers()):
                self._regrant.discard(execution_id)
            return True
        first = next(iter(self._queue))
        if first == execution_id and len(self._holders) < self._limit:
            del self._queue[execution_id]
            self._holders[execution_id] = None
            self._state.granted += 1
            if asked_before and self._tells_late_answers():
                self._regrant.add(execution_id)
            return True
        return False

    def _tells_late_answers(self) -> bool:
        """Whether a place given by an update to a run that asked before is also signalled
        (coordinators that started before LATE_ANSWERS_SIGNALLED did not: asked only here,
        where it changes what the coordinator sends)."""
        return versions.patched(LATE_ANSWERS_SIGNALLED)

    @workflow.signal(name=RELEASE_SIGNAL)
    def release(self, release: PlaceRelease) -> None:
        self._holders.pop(release.execution_id, None)
        self._queue.pop(release.execution_id, None)
        self._regrant.discard(release.execution_id)

    @workflow.query(name=PLACE_QUERY)
    def place(self, execution_id: str) -> int | None:
        """0: holds a place; n: the n-th in the queue; None: unknown here."""
        if execution_id in self._holders:
            return 0
        for index, queued in enumerate(self._queue):
            if queued == execution_id:
                return index + 1
        return None

    @workflow.query(name=STATE_QUERY)
    def state(self) -> CoordinatorState:
        """Who holds a place, who waits (in order), and how many places were granted since the
        coordinator first started (each run is granted one once)."""
        return self._snapshot()

    @workflow.run
    async def run(self, state: CoordinatorState) -> CoordinatorState:
        checked = workflow.now()
        one_timer = versions.patched(ONE_LIVENESS_TIMER)
        while True:
            self._grant()
            if self._history_is_long():
                await workflow.wait_condition(lambda: self._sending == 0)
                workflow.continue_as_new(self._snapshot())
            if self._queue and self._holders and one_timer:
                # Runs wait: every LIVENESS_SECONDS, free the places of runs closed unseen.
                if self._check_due:
                    self._check_due = False
                    await self._drop_closed_holders()
                    continue
                if self._ticking is None or self._ticking.done():
                    self._ticking = asyncio.create_task(self._tick())
                await self._wait(None, or_when=lambda: self._check_due)
            elif self._queue and self._holders:
                due = checked + timedelta(seconds=LIVENESS_SECONDS) - workflow.now()
                if due <= timedelta(0):
                    await self._drop_closed_holders()
                    checked = workflow.now()
                    continue
                await self._wait(due)
            elif self._holders:
                # Wake when the last holder leaves (to end idle) or a run starts waiting
                # (its wait starts the liveness checks).
                await self._wait(None, or_when=lambda: not self._holders or bool(self._queue))
            elif not await self._wait(timedelta(seconds=IDLE_SECONDS)) and not self._sending:
                return self._snapshot()

    async def _tick(self) -> None:
        """One timer per LIVENESS_SECONDS while runs wait (not one per workflow task)."""
        await workflow.sleep(LIVENESS_SECONDS, summary="check holders still run")
        self._check_due = True

    async def _wait(
        self, timeout: timedelta | None, or_when: Callable[[], bool] | None = None
    ) -> bool:
        """Wait for a place to grant (or ``or_when``): True; ``timeout`` passed: False."""
        try:
            await workflow.wait_condition(
                lambda: self._has_work() or (or_when is not None and or_when()), timeout=timeout
            )
        except TimeoutError:
            return False
        return True

    def _has_work(self) -> bool:
        free = len(self._holders) < self._limit
        return bool(self._regrant) or (free and bool(self._queue))

    def _grant(self) -> None:
        """Grant every free place to the first in the queue, and again to holders who asked
        again. The grant signals go out without the loop waiting for Temporal's receipt (the
        next release is handled in the next workflow task, not the one after); a grant to a
        run that no longer runs frees its place at once."""
        granted = list(self._regrant)
        self._regrant.clear()
        while self._queue and len(self._holders) < self._limit:
            execution_id = next(iter(self._queue))
            del self._queue[execution_id]
            self._holders[execution_id] = None
            granted.append(execution_id)
            self._state.granted += 1
        for execution_id in granted:
            self._sending += 1
            asyncio.create_task(self._signal(execution_id))  # noqa: RUF006 - counted in _sending

    async def _signal(self, execution_id: str) -> None:
        try:
            await workflow.get_external_workflow_handle(execution_id).signal(GRANT_SIGNAL)
        except Exception:  # the run is gone: its place is free again
            self._holders.pop(execution_id, None)
        finally:
            self._sending -= 1

    async def _drop_closed_holders(self) -> None:
        """Free the places of holders Temporal closed without our code, and drop from the
        head of the queue runs that closed without their release arriving (a request that
        crossed a cancel): the queue's head is what the next grants and places depend on."""
        head = list(self._queue)[:QUEUE_HEAD_CHECKED]
        try:
            closed = await workflow.execute_local_activity(
                CLOSED_EXECUTIONS,
                ClosedExecutions(execution_ids=list(self._holders) + head),
                result_type=list[str],
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary="check holders still run",
            )
        except ActivityError as err:  # Temporal unreachable from the worker: next time
            workflow.logger.warning("could not check the holders: %s", err)
            return
        for execution_id in closed:
            self._holders.pop(execution_id, None)
            self._queue.pop(execution_id, None)

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > MAX_HISTORY_EVENTS
            or self._answered >= MAX_UPDATES
        )

    def _snapshot(self) -> CoordinatorState:
        return self._state.model_copy(
            update={
                "limit": self._limit,
                "holders": list(self._holders),
                "queue": list(self._queue),
                "queue_started": list(self._queue.values()),
            }
        )
