"""Jobs: concurrent work inside one run (parallel branches, foreach iterations and shares).

``run`` starts at most ``limit`` jobs at once and gives their results in job order. With
``fail_fast`` the first failure cancels the jobs still running, waits until they have really
stopped, and is raised; otherwise a failed job's exception is its result.

A job told to stop may still see its activity complete: with
``WAIT_CANCELLATION_COMPLETED`` an activity that finishes after its cancel was requested hands
back its result, and the SDK clears the task's cancellation. ``told_to_stop`` remembers which
jobs were cancelled, so the interpreter ends such a step as cancelled all the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from temporalio import workflow

Job = Callable[[], Coroutine[Any, Any, Any]]


class Jobs:
    def __init__(self) -> None:
        self._told_to_stop: set[asyncio.Task[Any]] = set()

    def told_to_stop(self) -> bool:
        """Was the job running this code told to stop?"""
        task = asyncio.current_task()
        return task is not None and task in self._told_to_stop

    async def run(self, jobs: Sequence[Job], limit: int, fail_fast: bool) -> list[Any]:
        results: list[Any] = [None] * len(jobs)
        running: dict[asyncio.Task[Any], int] = {}
        started = 0
        failure: BaseException | None = None
        try:
            while running or (started < len(jobs) and failure is None):
                while started < len(jobs) and len(running) < limit and failure is None:
                    running[asyncio.create_task(jobs[started]())] = started
                    started += 1
                done, _ = await workflow.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=running.__getitem__):
                    position = running.pop(task)
                    self._told_to_stop.discard(task)
                    error = task.exception() if not task.cancelled() else asyncio.CancelledError()
                    if error is None:
                        results[position] = task.result()
                    elif fail_fast and failure is None:
                        failure = error
                        self._stop(running)
                    else:
                        results[position] = error
        except asyncio.CancelledError:
            self._stop(running)
            if running:
                await workflow.wait(list(running))
            raise
        finally:
            self._told_to_stop.difference_update(running)
        if failure is not None:
            raise failure
        return results

    def _stop(self, running: dict[asyncio.Task[Any], int]) -> None:
        for task in running:
            self._told_to_stop.add(task)
            task.cancel()
