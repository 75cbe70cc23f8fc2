"""Debounced starts: a start of a definition with `debounce` joins its key's open window
(workflows/flow/debouncer.py) instead of starting a run; every start of the window answers
the id of the one run that starts when the window closes."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from api.server.errors import ApiError
from api.server.executions.options import StartOptions
from api.server.store import StoredDefinition
from workflows.flow.keys import KeyTemplateError, resolve_key
from workflows.flow.messages import (
    DEBOUNCE_UPDATE,
    DEBOUNCER,
    DebouncedStart,
    DebouncerState,
    debouncer_id,
)


async def debounced_start(
    client: Client, task_queue: str, stored: StoredDefinition, options: StartOptions
) -> tuple[str, timedelta]:
    """The execution id of the window's run, and how long until it starts (if no other start
    with the key comes first)."""
    definition = stored.definition
    debounce = definition.debounce
    assert debounce is not None
    inputs = options.input.input_vars
    try:
        key = resolve_key(debounce.key, definition.key, inputs, "debounce.key")
    except KeyTemplateError as err:
        raise ApiError(422, "unresolved_key", str(err), "$.input_vars") from None
    start = DebouncedStart(
        execution_id_prefix=definition.key,
        input=options.input.model_dump(mode="json", exclude_none=True),
        seconds=debounce.seconds,
        task_queue=task_queue,
        definition_id=definition.key,
        definition_version=stored.version,
        started_by=options.input.started_by,
        static_summary=options.static_summary,
        static_details=options.static_details,
    )
    operation: WithStartWorkflowOperation[object, object] = WithStartWorkflowOperation(
        DEBOUNCER,
        DebouncerState(workflow_id=definition.key, key=key),
        id=debouncer_id(definition.key, key),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"debounce: {definition.key} · key {key[:100]}",
    )
    execution_id = await client.execute_update_with_start_workflow(
        DEBOUNCE_UPDATE, start, start_workflow_operation=operation, result_type=str
    )
    return execution_id, timedelta(seconds=debounce.seconds)
