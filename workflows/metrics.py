"""The engine's step metrics, recorded from workflow code through Temporal's metric meter.

``workflow.metric_meter()`` is replay-safe: while a run replays its history (after a cache
eviction, a worker restart or a redeploy) its counters and histograms record nothing, so a
step is counted once, when it completes, however often its run is replayed. The values land
on the worker's Prometheus endpoint (WORKER_METRICS_ADDRESS) beside Temporal's own metrics;
with no metrics configured the meter is a no-op. The meter adds ``namespace``, ``task_queue``
and ``workflow_type`` labels.

Deterministic-core rules apply: this module imports nothing but ``temporalio.workflow``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from temporalio import workflow

STEPS_TOTAL = "wfe_steps_total"
STEP_DURATION_SECONDS = "wfe_step_duration_seconds"


class FinishedStep(Protocol):
    """What a step record says about a finished step (workflows.shared.StepRecord)."""

    @property
    def type(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def start_time(self) -> datetime: ...

    @property
    def end_time(self) -> datetime | None: ...


def count_step(workflow_id: str | int, step: FinishedStep) -> None:
    """Count one finished step (``wfe_steps_total{workflow_id,type,status}``) and record how
    long it took (``wfe_step_duration_seconds{type}``, workflow time: start to end)."""
    meter = workflow.metric_meter()
    meter.create_counter(STEPS_TOTAL, "Steps finished, by definition, type and status").add(
        1, {"workflow_id": str(workflow_id), "type": step.type, "status": step.status}
    )
    if step.end_time is not None:
        seconds = max((step.end_time - step.start_time).total_seconds(), 0.0)
        meter.create_histogram_float(
            STEP_DURATION_SECONDS, "Step duration from start to end, by type", "s"
        ).record(seconds, {"type": step.type})
