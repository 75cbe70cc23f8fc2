"""Reading a finished run's history: event counts and where each step's time went.

Wall time measured by the client says how slow a run was; the server's event timestamps say
why. Each sequential activity step is the chain

    ActivityTaskScheduled -> ActivityTaskStarted -> ActivityTaskCompleted
        -> WorkflowTaskScheduled -> WorkflowTaskStarted -> WorkflowTaskCompleted (next step)

so its time splits into four phases: the activity waiting for a worker (``activity_queue``),
the activity running (``activity_run``), the workflow task waiting for a worker
(``wft_queue``, where the ~40 ms poll-limit stall of docs/temporal-tuning.md shows up) and
the workflow task running on the worker (``wft_run``, which includes any local activity such as the
engine's log write, since those run inside the workflow task).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

_PREFIX = "EVENT_TYPE_"
_ACTIVITY_SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
_ACTIVITY_STARTED = EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
_ACTIVITY_COMPLETED = EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
_WFT_STARTED = EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
_WFT_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


@dataclass
class StepTiming:
    """One activity step, in milliseconds of server time (see the module docstring)."""

    activity_queue: float = 0.0
    activity_run: float = 0.0
    wft_queue: float = 0.0
    wft_run: float = 0.0

    @property
    def total(self) -> float:
        return self.activity_queue + self.activity_run + self.wft_queue + self.wft_run

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "total": self.total}


def _ms(event: HistoryEvent) -> float:
    return event.event_time.ToNanoseconds() / 1e6


def event_name(event: HistoryEvent) -> str:
    """EVENT_TYPE_MARKER_RECORDED -> MarkerRecorded."""
    raw = EventType.Name(event.event_type).removeprefix(_PREFIX)
    return "".join(part.capitalize() for part in raw.split("_"))


def event_counts(history: WorkflowHistory) -> dict[str, int]:
    return dict(Counter(event_name(event) for event in history.events))


def step_timings(history: WorkflowHistory) -> list[StepTiming]:
    """The phases of every activity step, in order (a step ends when the next is scheduled).

    Assumes steps run one at a time, as in this benchmark. The workflow task that follows an
    activity's completion is the one that schedules the next step, so its queue and run times
    are charged to the step that just completed.
    """
    at: dict[int, float] = {}
    steps: list[StepTiming] = []
    current: StepTiming | None = None  # a completed activity whose follow-up WFT is pending
    for event in history.events:
        at[event.event_id] = _ms(event)
        kind = event.event_type
        if kind == _ACTIVITY_STARTED:
            attrs = event.activity_task_started_event_attributes
            steps.append(StepTiming(activity_queue=_ms(event) - at[attrs.scheduled_event_id]))
        elif kind == _ACTIVITY_COMPLETED:
            attrs_c = event.activity_task_completed_event_attributes
            current = steps[-1]
            current.activity_run = _ms(event) - at[attrs_c.started_event_id]
        elif kind == _WFT_STARTED and current is not None:
            current.wft_queue = (
                _ms(event) - at[event.workflow_task_started_event_attributes.scheduled_event_id]
            )
        elif kind == _WFT_COMPLETED and current is not None:
            current.wft_run = (
                _ms(event) - at[event.workflow_task_completed_event_attributes.started_event_id]
            )
            current = None
    return steps


def server_duration_ms(history: WorkflowHistory) -> float:
    """From the run's first event to its last, as the server recorded them."""
    return _ms(history.events[-1]) - _ms(history.events[0])


def summarise_phases(timings: list[StepTiming]) -> dict[str, Any]:
    """Mean of each phase over the steps, in ms."""
    count = max(len(timings), 1)
    keys = ("activity_queue", "activity_run", "wft_queue", "wft_run", "total")
    return {key: sum(t.as_dict()[key] for t in timings) / count for key in keys}


# Shared with the chaos script and the crash tests: how runs and activities end.
TERMINAL = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
}
ACTIVITY_CLOSE = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: (
        "completed",
        "activity_task_completed_event_attributes",
    ),
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: ("failed", "activity_task_failed_event_attributes"),
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: (
        "timed_out",
        "activity_task_timed_out_event_attributes",
    ),
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: (
        "cancelled",
        "activity_task_canceled_event_attributes",
    ),
}


def event_time(event: HistoryEvent) -> float:
    return event.event_time.ToNanoseconds() / 1e9


_WFT_COMPLETED_TYPE = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
_CHANGE_VERSION = "TemporalChangeVersion"  # the SDK's own record of patches, not a user's upsert


def billable_actions(history: WorkflowHistory) -> int:
    """Temporal Cloud's billable actions that a run's history shows.

    Counted as Temporal Cloud counts them: the start (client, child or continue-as-new), each
    child started, timer, signal and accepted update, every activity attempt (the started
    event carries the attempt number), search-attribute upserts (not the SDK's own
    ``TemporalChangeVersion`` record of a patch), and the local activities of one workflow
    task as one action. Version markers are not actions. Heartbeats and queries do not show
    in a history, so they are left out (neither side of the benchmark sends any).
    """
    types = EventType
    count = 0
    local_in_task = False
    for event in history.events:
        kind = event.event_type
        if kind in (
            types.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            types.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
            types.EVENT_TYPE_TIMER_STARTED,
            types.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            types.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
        ):
            count += 1
        elif kind == _ACTIVITY_STARTED:
            count += max(1, event.activity_task_started_event_attributes.attempt)
        elif kind == types.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            if set(fields.indexed_fields) - {_CHANGE_VERSION}:
                count += 1
        elif kind == types.EVENT_TYPE_MARKER_RECORDED:
            local_in_task = local_in_task or (
                event.marker_recorded_event_attributes.marker_name == "core_local_activity"
            )
        elif kind == _WFT_COMPLETED_TYPE:
            count += local_in_task
            local_in_task = False
    return count + local_in_task
