"""Heartbeats for long awaits, so Temporal's cancellation reaches a running step.

An activity only learns it was cancelled from a heartbeat answer; an HTTP call that waits 60 s
for a slow server would otherwise run to the end after the user pressed cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")

HEARTBEAT_INTERVAL_SECONDS = 1.0


async def with_heartbeats(
    awaitable: Awaitable[T], interval: float = HEARTBEAT_INTERVAL_SECONDS
) -> T:
    """Await ``awaitable`` while heartbeating; cancelling the activity cancels the work."""
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
