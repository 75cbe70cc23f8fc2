"""Limiter workflows shared by every run and worker (docs/flow-control.md).

:class:`WindowRateLimiter`, one per AI_RATE_LIMITS entry, hands out *turns*: the time at
which a request may be sent so that no 60-second window (plus a margin for the way to the
provider) holds more than the requests and tokens allowed. The `reserve` update answers at
once, so no handler is ever in flight when the limiter continues as new; the caller (the
activity about to call the provider) waits until its turn. Turns are given in the order
asked, so a burst is served first come, first served.

:class:`InFlightLimiter`, one per HTTP_HOST_CONCURRENCY entry, holds permits: the `acquire`
update waits (at most ACQUIRE_WAIT) for one of ``limit`` permits in the order asked; the
caller signals `release` after its request. Each permit is a lease: a caller that crashed
with it gives it back when the lease ends.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from functools import partial

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.flow.messages import (
        ACQUIRE_UPDATE,
        IN_FLIGHT_LIMITER,
        RELEASE_PERMIT_SIGNAL,
        RESERVE_UPDATE,
        SETTLE_SIGNAL,
        WINDOW_LIMITER,
        AcquireRequest,
        InFlightState,
        ReserveRequest,
        SettleRequest,
        Turn,
        WindowEntry,
        WindowState,
    )

# Providers count a minute; a turn keeps a margin more, for the way from turn to provider.
MARGIN = timedelta(seconds=1)
WINDOW = timedelta(seconds=60) + MARGIN  # the longest window kept
# Limiters continue as new past this many events, and end after this long with nothing to do.
MAX_HISTORY_EVENTS = 4000
IDLE = timedelta(seconds=90)
# The longest an `acquire` waits before answering "not yet" (the caller asks again).
ACQUIRE_WAIT = timedelta(seconds=5)


def next_turn(entries: list[WindowEntry], now: datetime, request: ReserveRequest) -> datetime:
    """The earliest time at or after the last turn given (first come, first served) when one
    more request of ``request.tokens`` fits in every window. Entries are in time order."""
    window = timedelta(seconds=request.window_seconds) + MARGIN
    at = max(now, entries[-1].at) if entries else now
    while True:
        inside = [e for e in entries if e.at > at - window]
        rpm, tpm = request.requests_per_minute, request.tokens_per_minute
        if rpm is not None and len(inside) >= rpm:
            at = inside[len(inside) - rpm].at + window
            continue
        if tpm is not None and inside and sum(e.tokens for e in inside) + request.tokens > tpm:
            at = inside[0].at + window  # one alone over the limit goes in an empty window
            continue
        return at


class _Limiter:
    _asked = 0  # requests so far (wakes the main loop)

    def _moved(self, seen: int) -> bool:
        return self._asked != seen or self._history_is_long()

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > MAX_HISTORY_EVENTS
        )


@workflow.defn(name=WINDOW_LIMITER)
class WindowRateLimiter(_Limiter):
    """Requests and tokens per minute for one model (or provider prefix)."""

    @workflow.init
    def __init__(self, state: WindowState) -> None:
        self._state = state
        self._entries = list(state.entries)
        self._asked = 0
        self._window = WINDOW

    @workflow.update(name=RESERVE_UPDATE)
    def reserve(self, request: ReserveRequest) -> Turn:
        now = workflow.now()
        self._window = timedelta(seconds=request.window_seconds) + MARGIN
        self._prune(now)
        for entry in self._entries:
            if entry.request_id == request.request_id:  # asked again (a retried update)
                return Turn(at=entry.at)
        at = next_turn(self._entries, now, request)
        self._entries.append(
            WindowEntry(at=at, tokens=request.tokens, request_id=request.request_id)
        )
        self._asked += 1
        return Turn(at=at)

    @workflow.signal(name=SETTLE_SIGNAL)
    def settle(self, request: SettleRequest) -> None:
        for entry in self._entries:
            if entry.request_id == request.request_id:
                entry.tokens = request.tokens
                return

    @workflow.run
    async def run(self, state: WindowState) -> None:
        while True:
            seen = self._asked
            try:
                await workflow.wait_condition(partial(self._moved, seen), timeout=IDLE)
            except TimeoutError:
                self._prune(workflow.now())
                if not self._entries:
                    return
            if self._history_is_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._prune(workflow.now())
                workflow.continue_as_new(self._state.model_copy(update={"entries": self._entries}))

    def _prune(self, now: datetime) -> None:
        self._entries = [e for e in self._entries if e.at > now - self._window]


@workflow.defn(name=IN_FLIGHT_LIMITER)
class InFlightLimiter(_Limiter):
    """Requests in flight to one host."""

    @workflow.init
    def __init__(self, state: InFlightState) -> None:
        self._state = state
        self._holders = dict(state.holders)
        self._queue: list[str] = []
        self._limit = 1
        self._draining = False
        self._asked = 0

    @workflow.update(name=ACQUIRE_UPDATE)
    async def acquire(self, request: AcquireRequest) -> bool:
        """True: a permit is the caller's. False: not yet (ask again)."""
        self._limit = request.limit
        self._asked += 1
        if request.request_id in self._holders:
            return True
        self._queue.append(request.request_id)
        deadline = workflow.now() + ACQUIRE_WAIT
        try:
            while not self._draining:
                self._expire()
                if self._queue.index(request.request_id) < self._limit - len(self._holders):
                    lease = timedelta(seconds=request.lease_seconds)
                    self._holders[request.request_id] = workflow.now() + lease
                    return True
                left = deadline - workflow.now()
                if left <= timedelta(0):
                    return False
                with contextlib.suppress(TimeoutError):  # a lease ended, or time to answer
                    await workflow.wait_condition(
                        partial(self._freed, len(self._holders)),
                        timeout=min([left, *self._until_expiry()]),
                    )
            return False
        finally:
            if request.request_id in self._queue:
                self._queue.remove(request.request_id)

    @workflow.signal(name=RELEASE_PERMIT_SIGNAL)
    def release(self, request_id: str) -> None:
        self._holders.pop(request_id, None)

    @workflow.run
    async def run(self, state: InFlightState) -> None:
        while True:
            seen = self._asked
            try:
                await workflow.wait_condition(partial(self._moved, seen), timeout=IDLE)
            except TimeoutError:
                self._expire()
                if not self._holders and not self._queue:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    return
            if self._history_is_long():
                self._draining = True  # waiting callers answer "not yet" and ask the next run
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._expire()
                workflow.continue_as_new(self._state.model_copy(update={"holders": self._holders}))

    def _freed(self, holders: int) -> bool:
        return self._draining or len(self._holders) < holders

    def _expire(self) -> None:
        now = workflow.now()
        self._holders = {k: until for k, until in self._holders.items() if until > now}

    def _until_expiry(self) -> list[timedelta]:
        now = workflow.now()
        return [max(until - now, timedelta(milliseconds=10)) for until in self._holders.values()]
