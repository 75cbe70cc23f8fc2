"""The engine's step metrics, recorded from workflow code through Temporal's metric meter.

``workflow.metric_meter()`` is replay-safe: while a run replays its history (after a cache
eviction, a worker restart or a redeploy) its counters and histograms record nothing, so a
step is counted once, when it completes, however often its run is replayed. The values land
on the worker's Prometheus endpoint (WORKER_METRICS_ADDRESS) beside Temporal's own metrics;
with no metrics configured the meter is a no-op. The meter adds ``namespace``, ``task_queue``
and ``workflow_type`` labels.

Deterministic-core rules apply: this module imports nothing but the SDK's workflow API (and
the metric types it hands out).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from temporalio import workflow
from temporalio.common import MetricCounter, MetricHistogramFloat, MetricMeter

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


class StepMetrics:
    """One run's step instruments: ``wfe_steps_total{workflow_id,type,status}`` and
    ``wfe_step_duration_seconds{type}`` (workflow time: start to end).

    Made once a run, and bound once to each set of labels: every ``create_*`` and every
    label set is a call into the SDK's core, which, made for every step, cost more than the
    rest of the step's bookkeeping."""

    def __init__(self, workflow_id: str | int) -> None:
        self._workflow_id = str(workflow_id)
        self._meter: MetricMeter | None = None
        self._counters: dict[tuple[str, str], MetricCounter] = {}
        self._durations: dict[str, MetricHistogramFloat] = {}

    def count(self, step: FinishedStep) -> None:
        """Count one finished step and record how long it took."""
        if workflow.unsafe.is_replaying():
            return  # the meter records nothing while a run replays: skip the work too
        meter = self._meter
        if meter is None:
            meter = self._meter = workflow.metric_meter()
        key = (step.type, step.status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = meter.create_counter(
                STEPS_TOTAL, "Steps finished, by definition, type and status"
            ).with_additional_attributes(
                {"workflow_id": self._workflow_id, "type": step.type, "status": step.status}
            )
        counter.add(1)
        if step.end_time is not None:
            duration = self._durations.get(step.type)
            if duration is None:
                duration = self._durations[step.type] = meter.create_histogram_float(
                    STEP_DURATION_SECONDS, "Step duration from start to end, by type", "s"
                ).with_additional_attributes({"type": step.type})
            duration.record(max((step.end_time - step.start_time).total_seconds(), 0.0))
