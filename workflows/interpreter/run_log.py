"""RunLog: the run's side of its execution log (WorkflowLogger writes it, in the activities).

Records of finished steps wait here (``pending``) until something writes them:

- an activity step carries them (``carry``): its activity writes them alongside its call, so
  no step needs a log-writing local activity of its own, and the write overlaps the step's
  wait. Each record rides with one activity at a time, so concurrent steps do not all carry
  the same records; those left over go with the next carrier;
- a log write (a local activity, ``flush``) before a step that waits on the outside world
  without carrying, after ``LOG_BATCH`` records, for a rerun's reused step, and at the end.

Records of steps that run inside the workflow (set, condition, fail) are batched: nothing is
lost by waiting, they are recomputed identically on replay. Runs started before batching or
carrying keep their own way of writing (the markers in patches.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from workflows import versions
    from workflows.deadline import Deadline
    from workflows.interpreter import patches
    from workflows.kinds import kind_of
    from workflows.kinds.common import StepBase
    from workflows.messages import WRITE_EXECUTION_LOG, LogWrite, StepRecord

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

# Records batched before a log write even when no step waits (a loop of `set` steps).
LOG_BATCH = 100

# The header fields of a log write (status, times, error, usage), as the run stands.
Header = Callable[[], dict[str, Any]]


class RunLog:
    """The records a run has not written yet, and how and when they are written."""

    def __init__(self, header: Header, created: bool, writes: bool = True) -> None:
        """``created``: a continued run's log exists already; ``writes`` False for a foreach
        share, whose parent writes the records it hands back."""
        self._header = header
        self.pending: list[StepRecord] = []
        self._in_transit: set[int] = set()  # pending records an activity in flight carries
        self.batched = False
        self.carrying = False
        self.created = created
        self._writes = writes
        self.records_only = False  # a foreach share's writes (write_for_share)
        # Concurrent steps finishing together start one write of the records no write holds
        # yet (older runs started a write per step, each with every pending record).
        self.coalesced = False
        self.deadline: Deadline | None = None  # the run's (a write may wait a day: retries)
        # A test run's virtual clock (workflows/mocking.py): it holds while a write is out.
        self.clock: Any = None

    def write_for_share(self, log: LogWrite) -> None:
        """A foreach share writes its records into its parent's log (``log``: the parent's
        header, which the share's writes carry only for a log that has none yet)."""
        header = log.model_dump(exclude={"step", "steps", "records_only"})
        self._header = lambda: header
        self.records_only = True
        self.created = self._writes = self.batched = self.carrying = self.coalesced = True

    def template(self) -> LogWrite:
        """What a share of this run's foreach writes with (see ``write_for_share``)."""
        return self.entry([]).model_copy(update={"records_only": True})

    def decide(self) -> None:
        """How this run writes (asked once, when it starts: see the markers)."""
        self.carrying = versions.patched(patches.ACTIVITIES_CARRY_LOG)
        self.batched = self.carrying or versions.patched(patches.BATCHED_LOGS)
        self.coalesced = versions.patched(patches.SHARES_WRITE_LOGS)

    # -- carried by activities ------------------------------------------------------------

    def carries(self, step: StepBase) -> bool:
        return self.carrying and kind_of(step).carries_log

    def flush_first(self, step: StepBase) -> bool:
        """Write before ``step``: it waits on the outside world and carries nothing, and the
        log should show progress before a long wait."""
        return (
            self.batched
            and bool(self.pending or not self.created)
            and kind_of(step).waits
            and not self.carries(step)
        )

    def carry(self, step: StepBase) -> tuple[LogWrite | None, list[StepRecord]]:
        """The write ``step``'s activity carries (None: none), and the records in it."""
        carried = [r for r in self.pending if id(r) not in self._in_transit]
        if not self.carries(step) or not (carried or not self.created):
            return None, carried
        self._in_transit.update(id(r) for r in carried)
        return self.entry(carried), carried

    def release(self, carried: Sequence[StepRecord]) -> None:
        """The carrying activity ended, written or not: the records may ride again."""
        self._in_transit.difference_update(id(r) for r in carried)

    def carried_written(self, carried: Sequence[StepRecord]) -> None:
        """The carrying activity wrote its records (and so created the log)."""
        self.forget(carried)
        self.created = True

    # -- written by the run ---------------------------------------------------------------

    def add(self, record: StepRecord, waits: bool, deferred: bool) -> bool:
        """Keep a finished step's record; True when it should be written now."""
        self.pending.append(record)
        unheld = len(self.pending) - len(self._in_transit) if self.coalesced else len(self.pending)
        return not self.batched or (waits and not deferred) or unheld >= LOG_BATCH

    def forget(self, written: Sequence[StepRecord]) -> None:
        """Drop records a write has stored (by identity: parallel steps write concurrently)."""
        stored = {id(record) for record in written}
        self.pending[:] = [record for record in self.pending if id(record) not in stored]

    async def flush(self, summary: str = "execution log") -> None:
        if not self._writes:
            return  # a foreach share: its parent writes the records it hands back
        if not self.coalesced:
            records = list(self.pending)
            await self.write(records, summary)
            # Cleared only once written: a cancellation mid-write leaves them for the final write.
            self.forget(records)
            return
        records = [r for r in self.pending if id(r) not in self._in_transit]
        if not records and self.created:
            return  # every record is on its way already
        self._in_transit.update(id(r) for r in records)
        try:
            await self.write(records, summary)
        finally:
            self.release(records)
        self.forget(records)

    async def write(
        self, records: list[StepRecord] | None = None, summary: str = "execution log"
    ) -> None:
        if self.deadline is not None:
            self.deadline.expect(LOG_WRITE_OPTIONS["schedule_to_close_timeout"])
        clock = self.clock
        if clock is not None:
            clock.outside += 1
        try:
            await workflow.execute_local_activity(
                WRITE_EXECUTION_LOG,
                self.entry(records or []),
                summary=summary,
                **LOG_WRITE_OPTIONS,
            )
        finally:
            if clock is not None:
                clock.outside -= 1
        self.created = True

    async def write_final(self) -> bool:
        """The run's last write, which it must not close without: repeated if Temporal's
        cancellation reaches it (the write is idempotent). True if that happened."""
        cancelled_meanwhile = False
        while True:
            try:
                await self.write(list(self.pending))
                self.pending.clear()
                return cancelled_meanwhile
            except asyncio.CancelledError:
                cancelled_meanwhile = True
            except ActivityError as err:
                # Temporal's cancel can reach the final write before it starts: the write's
                # own cancellation. Older runs let it end the run with the log still open.
                if not is_cancelled_exception(err) or not versions.patched(
                    patches.FINAL_WRITE_OUTLIVES_CANCEL
                ):
                    raise
                cancelled_meanwhile = True

    def entry(self, records: list[StepRecord]) -> LogWrite:
        """The log header as it stands, with ``records`` to merge."""
        batch: dict[str, Any] = {"steps": records}
        if not self.batched:  # the first version's shape: at most one record per write
            batch = {"step": records[0] if records else None}
        return LogWrite(**self._header(), **batch, records_only=self.records_only)
