"""Debouncer: one workflow per (workflow id, key) that collapses a burst of starts into one run.

Each start is a `debounce` update (update-with-start, so the first start of a burst creates
the debouncer): it opens a window, or joins the open one, and answers the execution id the
window's run will have. The run starts ``seconds`` after the last start of the window, with
that start's inputs, as a child that outlives the debouncer (ParentClosePolicy.ABANDON). The
window closes before the run is started, so a start arriving meanwhile opens the next window.
The debouncer ends once no window is open for IDLE.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows.flow.messages import (
        DEBOUNCE_UPDATE,
        DEBOUNCER,
        DebouncedStart,
        DebouncerState,
    )
    from workflows.messages import (
        SA_DEFINITION_ID,
        SA_DEFINITION_VERSION,
        SA_STARTED_BY,
        SA_STATUS,
        WORKFLOW_TYPE,
    )

IDLE = timedelta(seconds=5)
MAX_HISTORY_EVENTS = 2000  # each start carries the run's whole input: keep histories short


@workflow.defn(name=DEBOUNCER)
class Debouncer:
    """Collapses starts with the same key into one run per quiet window."""

    @workflow.init
    def __init__(self, state: DebouncerState) -> None:
        self._state = state
        self._window = state.window
        self._last = state.last_at or workflow.now()
        self._starts = 0

    @workflow.update(name=DEBOUNCE_UPDATE)
    def debounce(self, start: DebouncedStart) -> str:
        """Join the open window (or open one): the execution id of its run."""
        if self._window is not None and self._window.execution_id is not None:
            execution_id = self._window.execution_id
        else:
            execution_id = f"{start.execution_id_prefix}-{workflow.uuid4()}"
        self._window = start.model_copy(update={"execution_id": execution_id})
        self._last = workflow.now()
        self._starts += 1
        return execution_id

    @workflow.run
    async def run(self, state: DebouncerState) -> None:
        while True:
            if self._window is None:
                try:
                    await workflow.wait_condition(lambda: self._window is not None, timeout=IDLE)
                except TimeoutError:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    if self._window is None:
                        return
                continue
            await self._quiet_window()
            window, self._window = self._window, None
            await self._start(window)
            if workflow.info().get_current_history_length() > MAX_HISTORY_EVENTS:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    self._state.model_copy(update={"window": self._window, "last_at": self._last})
                )

    async def _quiet_window(self) -> None:
        """Until ``seconds`` have passed since the window's last start."""
        while self._window is not None:
            due = self._last + timedelta(seconds=self._window.seconds) - workflow.now()
            if due <= timedelta(0):
                return
            try:
                await workflow.wait_condition(partial(self._moved, self._starts), timeout=due)
            except TimeoutError:
                return

    def _moved(self, seen: int) -> bool:
        return self._starts != seen

    async def _start(self, window: DebouncedStart) -> None:
        pairs: list[SearchAttributePair[Any]] = [
            SearchAttributePair(SA_DEFINITION_ID, window.definition_id),
            SearchAttributePair(SA_STATUS, "running"),
        ]
        if window.definition_version is not None:
            pairs.append(SearchAttributePair(SA_DEFINITION_VERSION, window.definition_version))
        if window.started_by:
            pairs.append(SearchAttributePair(SA_STARTED_BY, window.started_by))
        assert window.execution_id is not None
        try:
            await workflow.start_child_workflow(
                WORKFLOW_TYPE,
                window.input,
                id=window.execution_id,
                task_queue=window.task_queue,
                search_attributes=TypedSearchAttributes(pairs),
                parent_close_policy=ParentClosePolicy.ABANDON,
                static_summary=window.static_summary,
                static_details=window.static_details,
            )
        except Exception as err:  # the id is taken: nothing more to start
            workflow.logger.warning("debounced run %s not started: %s", window.execution_id, err)
