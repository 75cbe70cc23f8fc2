"""Does a worker poll this deployment's task queue? A misconfigured queue is loud.

Temporal accepts a start on any task queue, polled or not: with no worker on
``TEMPORAL_TASK_QUEUE`` (none running, or a typo in one of the two configurations) the run just
waits, silently. So ``/readyz`` answers 503 naming the queue, and a start answers 202 with a
``no_worker`` warning in ``errors``.

The check is Temporal's DescribeTaskQueue for both task queue types our worker polls
(workflow and activity). Temporal lists a poller for 5 minutes after its last poll and reports
``last_access_time`` as the start of the poller's current long poll (an idle worker's poll lasts
up to ~60 s, then it polls again), so a poller counts as live when it polled within
``API_WORKER_POLL_WINDOW_SECONDS`` (90 s: see activities/runtime/settings.py).

Starts must not pay two RPCs each, so one answer is kept for :data:`CACHE_SECONDS` per API
process and concurrent callers share one check in flight; ``/readyz`` always asks afresh
(a probe every few seconds costs nothing) and refreshes what starts read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.runtime.settings import Settings
from api.server.schemas import ErrorItem

logger = logging.getLogger(__name__)

NO_WORKER = "no_worker"
# Long enough that a burst of starts costs one check, short enough that a worker that has
# just started (or stopped) is seen within seconds.
CACHE_SECONDS = 5.0
RPC_TIMEOUT = timedelta(seconds=3)
# The task queue types the engine's worker polls (worker.py runs workflows and activities).
QUEUE_TYPES = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}
# Errors that say the check cannot be made here, not that anything is wrong with the queue:
# an API key without the right to describe task queues, a server without the call. Readiness
# then rests on Temporal's reachability alone (refusing it forever would help nobody).
UNCHECKABLE = (RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNIMPLEMENTED)


@dataclass(frozen=True)
class PollerReport:
    """One answer: which task queue types lack a live poller, or why nobody knows."""

    checked_at: float  # time.monotonic()
    task_queue: str
    namespace: str
    missing: tuple[str, ...] = ()
    error: str | None = None  # the check failed: no verdict on the pollers
    checkable: bool = True  # False: the server will not tell us (see UNCHECKABLE)

    @property
    def polled(self) -> bool:
        return self.error is None and not self.missing

    def _what(self) -> str:
        where = f"task queue '{self.task_queue}' on namespace '{self.namespace}'"
        if len(self.missing) == len(QUEUE_TYPES):
            return f"no worker polls {where}"
        return f"no worker polls {where} for {' or '.join(self.missing)} tasks"

    def warnings(self) -> list[ErrorItem]:
        """The warning for a start's ``errors`` (none when polled or when nobody knows)."""
        if self.error is not None or not self.missing:
            return []
        message = (
            f"{self._what()}: the run waits until one does; start one with "
            "`python worker.py` (or check TEMPORAL_TASK_QUEUE)"
        )
        return [ErrorItem(code=NO_WORKER, message=message)]

    def readiness(self, window: float) -> str:
        """What /readyz says about the workers: "ok", or the cause of the 503."""
        if self.error is not None:
            if not self.checkable:
                return f"unknown: {self.error}"
            return f"cannot check the pollers of task queue '{self.task_queue}': {self.error}"
        if self.missing:
            return (
                f"{self._what()} (none polled in the last {window:g}s): start one with "
                "`python worker.py` (or check TEMPORAL_TASK_QUEUE)"
            )
        return "ok"

    @property
    def ready(self) -> bool:
        return self.polled or not self.checkable


class WorkerPollers:
    """The poller check of one API process: cached, shared by concurrent callers."""

    def __init__(self, settings: Settings, cache_seconds: float = CACHE_SECONDS) -> None:
        self._settings = settings
        self.window = settings.api_worker_poll_window_seconds
        # Never trust a cached answer longer than the window it applies.
        self._cache_seconds = min(cache_seconds, self.window)
        self._report: PollerReport | None = None
        self._checking: asyncio.Task[PollerReport] | None = None
        self._logged_error: str | None = None

    def fresh(self) -> PollerReport | None:
        """The cached answer if it is recent enough for a start; None otherwise."""
        report = self._report
        if report is not None and time.monotonic() - report.checked_at < self._cache_seconds:
            return report
        return None

    def refresh(self, client: Client) -> asyncio.Task[PollerReport]:
        """The check in flight, or a new one. Await it through ``asyncio.shield`` (a caller
        that goes away must not cancel what the others wait for); it never raises."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._check(client))
        return self._checking

    async def report(self, client: Client, fresh: bool = False) -> PollerReport:
        """The cached answer, or (when stale, or ``fresh``) a new one."""
        cached = None if fresh else self.fresh()
        if cached is not None:
            return cached
        return await asyncio.shield(self.refresh(client))

    async def _check(self, client: Client) -> PollerReport:
        settings = self._settings
        try:
            live = await asyncio.gather(
                *(self._live_pollers(client, kind) for kind in QUEUE_TYPES.values())
            )
            missing = tuple(
                name for name, count in zip(QUEUE_TYPES, live, strict=True) if not count
            )
            report = PollerReport(
                time.monotonic(),
                settings.temporal_task_queue,
                settings.temporal_namespace,
                missing=missing,
            )
        except Exception as err:
            reason = (err.message if isinstance(err, RPCError) else str(err)) or type(err).__name__
            checkable = not (isinstance(err, RPCError) and err.status in UNCHECKABLE)
            if reason != self._logged_error:  # once per distinct failure, not per start
                self._logged_error = reason
                logger.warning(
                    "cannot describe task queue %s: %s", settings.temporal_task_queue, reason
                )
            report = PollerReport(
                time.monotonic(),
                settings.temporal_task_queue,
                settings.temporal_namespace,
                error=reason,
                checkable=checkable,
            )
        self._report = report
        return report

    async def _live_pollers(self, client: Client, kind: TaskQueueType.ValueType) -> int:
        answer = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self._settings.temporal_namespace,
                task_queue=TaskQueue(
                    name=self._settings.temporal_task_queue,
                    kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL,
                ),
                task_queue_type=kind,
            ),
            timeout=RPC_TIMEOUT,
        )
        # Temporal's clock against ours: the window's slack covers the skew (settings.py).
        oldest = datetime.now(UTC) - timedelta(seconds=self.window)
        return sum(
            1
            for poller in answer.pollers
            if poller.HasField("last_access_time")
            and poller.last_access_time.ToDatetime(UTC) >= oldest
        )
