"""Heartbeats for long awaits, so Temporal's cancellation reaches a running step.

An activity only learns it was cancelled from a heartbeat answer; an HTTP call that waits 60 s
for a slow server would otherwise run to the end after the user pressed cancel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import activity

T = TypeVar("T")

HEARTBEAT_INTERVAL_SECONDS = 1.0


async def with_heartbeats(
    awaitable: Awaitable[T],
    interval: float = HEARTBEAT_INTERVAL_SECONDS,
    details: Callable[[], list[Any]] | None = None,
) -> T:
    """Await ``awaitable`` while heartbeating; cancelling the activity cancels the work.

    The work is awaited in the activity's own task and a loop timer heartbeats beside it: no
    second task and no wait loop, which a step that answers in a millisecond would pay for in
    extra event-loop turns. ``details``: what each heartbeat carries (a streamed answer so
    far), since a heartbeat without them would replace the last ones Temporal holds.
    """
    loop = asyncio.get_running_loop()
    timer: asyncio.TimerHandle | None = None

    def beat() -> None:
        nonlocal timer
        activity.heartbeat(*(details() if details else ()))
        timer = loop.call_later(interval, beat)

    timer = loop.call_later(interval, beat)
    try:
        return await awaitable
    finally:
        timer.cancel()
