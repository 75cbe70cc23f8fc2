"""Schedule triggers checked before a definition is saved (README "Triggers"), so a save
either moves the version and its schedules together or changes nothing.

- At most DEFINITION_MAX_TRIGGERS (10) triggers per definition: each schedule is a Temporal
  Schedule and each fire a run.
- ``interval_seconds`` at least SCHEDULE_MIN_INTERVAL_SECONDS (60).
- A ``cron`` (and its ``time_zone``) is read by Temporal's own grammar, which only Temporal
  can apply: each is created as a paused scratch schedule (``wfe-check-<uuid>``, never
  fires, deleted at once). What Temporal refuses is a 422 naming the trigger's path, with
  Temporal's reason. What it accepts comes back as calendars (seconds, minutes, hours), and
  the tightest gap between two fires of a day must be at least SCHEDULE_MIN_INTERVAL_SECONDS:
  days are counted as if every one fired (a gap across midnight counts too), so a cron is
  never let through for firing more often than that on days it happens to skip.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from itertools import pairwise

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleCalendarSpec,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.runtime.settings import Settings
from api.server.triggers import schedule_spec
from workflows.definition import ScheduleTrigger, WorkflowDefinition
from workflows.errors import Problem
from workflows.messages import WORKFLOW_TYPE

DAY = 86_400
SCRATCH_PREFIX = "wfe-check-"


def trigger_count_problem(document: object, settings: Settings) -> Problem | None:
    """Too many triggers (counted before anything else is read of them)."""
    limit = settings.definition_max_triggers
    triggers = document.get("triggers") if isinstance(document, dict) else None
    if isinstance(triggers, list) and len(triggers) > limit:
        return Problem(
            "$.triggers",
            f"{len(triggers)} triggers; the limit is {limit} (DEFINITION_MAX_TRIGGERS)",
            code="too_many_triggers",
        )
    return None


def interval_problem(where: str, trigger: ScheduleTrigger, settings: Settings) -> Problem | None:
    least = settings.schedule_min_interval_seconds
    if trigger.interval_seconds is not None and trigger.interval_seconds < least:
        return _too_often(f"{where}.interval_seconds", trigger.interval_seconds, least)
    return None


def _too_often(path: str, seconds: float, least: float) -> Problem:
    return Problem(
        path,
        f"fires every {seconds:g}s at the tightest; the least interval is {least:g}s "
        "(SCHEDULE_MIN_INTERVAL_SECONDS)",
        code="schedule_too_frequent",
    )


def _values(ranges: Sequence[ScheduleRange], default: int) -> list[int]:
    if not ranges:
        return [default]
    found: set[int] = set()
    for item in ranges:
        found.update(range(item.start, max(item.end, item.start) + 1, item.step or 1))
    return sorted(found)


def tightest_gap(spec: ScheduleSpec) -> float | None:
    """The shortest time between two fires of ``spec`` (calendars as if every day fired)."""
    gaps = [interval.every.total_seconds() for interval in spec.intervals]
    moments: set[int] = set()
    for calendar in spec.calendars:
        moments |= _moments(calendar)
    ordered = sorted(moments)
    if ordered:
        gaps.append(DAY - ordered[-1] + ordered[0])  # the last of a day to the next day's first
        gaps += [later - earlier for earlier, later in pairwise(ordered)]
    return min(gaps) if gaps else None


def _moments(calendar: ScheduleCalendarSpec) -> set[int]:
    """The seconds of a day at which ``calendar`` fires."""
    return {
        hour * 3600 + minute * 60 + second
        for hour in _values(calendar.hour, 0)
        for minute in _values(calendar.minute, 0)
        for second in _values(calendar.second, 0)
    }


async def schedule_problems(
    client: Client, settings: Settings, definition: WorkflowDefinition
) -> list[Problem]:
    """Every schedule trigger as Temporal reads it: refused specs, and fires too frequent."""
    checks = [
        _check(client, settings, f"$.triggers[{index}]", trigger)
        for index, trigger in enumerate(definition.triggers)
        if isinstance(trigger, ScheduleTrigger) and trigger.cron is not None
    ]
    found = await asyncio.gather(*checks)
    return [problem for problem in found if problem is not None]


async def _check(
    client: Client, settings: Settings, where: str, trigger: ScheduleTrigger
) -> Problem | None:
    scratch = Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_TYPE, id=SCRATCH_PREFIX + "run", task_queue=settings.temporal_task_queue
        ),
        spec=schedule_spec(trigger),
        state=ScheduleState(paused=True, note="wfe: checking a trigger; deleted at once"),
    )
    try:
        handle = await client.create_schedule(f"{SCRATCH_PREFIX}{uuid.uuid4()}", scratch)
    except RPCError as err:
        if err.status != RPCStatusCode.INVALID_ARGUMENT:
            raise  # Temporal unreachable: a 503, and nothing is saved
        field = "time_zone" if "time zone" in err.message.lower() else "cron"
        return Problem(
            f"{where}.{field}",
            f"Temporal refuses this schedule: {err.message}",
            code="invalid_schedule",
        )
    try:
        described = await handle.describe()
    finally:
        await handle.delete()
    gap = tightest_gap(described.schedule.spec)
    least = settings.schedule_min_interval_seconds
    return _too_often(f"{where}.cron", gap, least) if gap is not None and gap < least else None
