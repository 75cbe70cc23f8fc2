"""Triggers: schedules become Temporal Schedules; webhooks are verified by their scheme's
verifier (api/server/webhooks/, docs/webhooks.md). The engine's own ``hmac`` scheme's signing
helpers are re-exported here for senders written in Python.

Schedules are kept in step with the definition whenever it is saved or deleted through the
API: each ``schedule`` trigger is one Temporal Schedule ``wfe:<workflow_id>:<trigger id>``
whose action starts the definition *as saved* (a run started by a schedule is pinned to the
version current when the schedule was last synced, like any other run).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.runtime.settings import Settings
from api.server.errors import ApiError
from api.server.executions.options import execution_limits, start_options
from api.server.store import StoredDefinition
from api.server.webhooks.hmac_scheme import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signed_headers,
)
from workflows.definition import ScheduleTrigger
from workflows.flow.keys import KeyTemplateError
from workflows.messages import WORKFLOW_TYPE
from workflows.run_inputs import checked_inputs
from workflows.shared import LibraryEntry

logger = logging.getLogger(__name__)

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "delete_schedules",
    "schedule_id",
    "schedule_spec",
    "sign",
    "signed_headers",
    "sync_schedules",
]


def schedule_id(workflow_id: str, trigger_id: str) -> str:
    # ':' cannot appear in workflow or trigger ids, so ids of different workflows never clash.
    return f"wfe:{workflow_id}:{trigger_id}"


def schedule_spec(trigger: ScheduleTrigger) -> ScheduleSpec:
    """When a schedule trigger fires, as Temporal takes it (schedule_checks.py checks it)."""
    if trigger.cron is not None:
        return ScheduleSpec(cron_expressions=[trigger.cron], time_zone_name=trigger.time_zone)
    every = timedelta(seconds=trigger.interval_seconds or 60)
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)])


def _schedule(
    stored: StoredDefinition,
    trigger_id: str,
    trigger: ScheduleTrigger,
    settings: Settings,
    library: dict[str, LibraryEntry],
) -> Schedule:
    # Checked when the definition was saved; filled with its defaults like any start.
    inputs, _ = checked_inputs(stored.definition.inputs, trigger.input_vars)
    try:
        options = start_options(
            stored,
            inputs,
            f"schedule:{trigger_id}",
            settings.execution_max_steps_per_run,
            execution_limits(stored.definition, settings),
            library,
            settings.api_url_for_runs,
        )
    except KeyTemplateError as err:  # the schedule's fixed inputs: refused when saved
        raise ApiError(422, "unresolved_key", str(err), "$.triggers") from None
    return Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_TYPE,
            options.input,
            id=f"{stored.workflow_id}-{trigger_id}",  # Temporal appends the fire time
            task_queue=settings.temporal_task_queue,
            typed_search_attributes=options.search_attributes,
            static_summary=options.static_summary,
            static_details=options.static_details,
        ),
        spec=schedule_spec(trigger),
        state=ScheduleState(
            paused=trigger.paused,
            note=f"{stored.definition.title} v{stored.version} ({trigger_id})",
        ),
    )


async def _existing(client: Client, workflow_id: str) -> set[str]:
    prefix = schedule_id(workflow_id, "")
    found = set()
    async for entry in await client.list_schedules():
        if entry.id.startswith(prefix):
            found.add(entry.id)
    return found


async def sync_schedules(
    client: Client,
    settings: Settings,
    stored: StoredDefinition,
    library: dict[str, LibraryEntry] | None = None,
) -> list[str]:
    """Create, update or delete Temporal Schedules so they match the definition's triggers.

    A schedule's runs call the sub-workflows in ``library`` (the versions current at this
    save); save the definition again to move them to newer ones.
    """
    wanted: dict[str, Schedule] = {
        schedule_id(stored.workflow_id, trigger_id): _schedule(
            stored, trigger_id, trigger, settings, library or {}
        )
        for trigger_id, trigger in stored.definition.schedules()
    }
    for sid, schedule in wanted.items():
        try:
            await client.create_schedule(sid, schedule)
            logger.info("created schedule %s", sid)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(sid).update(replace)
            logger.info("updated schedule %s", sid)
    for sid in await _existing(client, stored.workflow_id) - set(wanted):
        await _delete(client, sid)
    return sorted(wanted)


async def delete_schedules(client: Client, workflow_id: str) -> None:
    for sid in await _existing(client, workflow_id):
        await _delete(client, sid)


async def _delete(client: Client, sid: str) -> None:
    try:
        await client.get_schedule_handle(sid).delete()
        logger.info("deleted schedule %s", sid)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
