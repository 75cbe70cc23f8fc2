"""The worker's Temporal runtime: where its metrics are served and where Core's logs go.

A client made with this runtime (``connect(settings, runtime=...)``) hands it to every worker
built on that client. With WORKER_METRICS_ADDRESS set, the runtime serves Prometheus text at
``http://<address>/metrics``: Temporal's SDK metrics (``temporal_`` prefix) and the engine's
own ``wfe_*`` metrics, which workflow and activity code record through Temporal's meters
(workflows/metrics.py, activities/metrics.py), so one scrape has both. With LOG_FORMAT=json,
Core's own (Rust) log lines are forwarded to Python logging, so they come out as JSON and
redacted like every other line. With neither, Temporal's default runtime is used and nothing
is served.
"""

from __future__ import annotations

import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from activities.runtime.settings import Settings
from workflows.errors import ConfigurationError
from workflows.metrics import STEP_DURATION_SECONDS

# Steps run from milliseconds (set, condition) to days (delay, wait_for_signal). The SDK's
# default buckets are for milliseconds; ours are seconds.
STEP_DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 21600.0, 86400.0,
)  # fmt: skip
CORE_LOGGER = "temporalio.core"


def worker_runtime(settings: Settings) -> Runtime | None:
    """The runtime the worker's client must be created with, or None for Temporal's default.

    Raises ConfigurationError naming WORKER_METRICS_ADDRESS when it cannot be served (taken,
    or not an address of this machine).
    """
    metrics = None
    if settings.worker_metrics_address:
        metrics = PrometheusConfig(
            bind_address=settings.worker_metrics_address,
            # Seconds, as Prometheus names and dashboards expect (the SDK default is ms).
            durations_as_seconds=True,
            histogram_bucket_overrides={STEP_DURATION_SECONDS: STEP_DURATION_BUCKETS},
        )
    if metrics is None and settings.log_format != "json":
        return None
    try:
        return Runtime(telemetry=TelemetryConfig(logging=_core_logs(settings), metrics=metrics))
    except Exception as err:  # the bridge raises a bare exception for a failed bind
        raise ConfigurationError(
            f"WORKER_METRICS_ADDRESS: cannot serve metrics on "
            f"{settings.worker_metrics_address}: {err}"
        ) from None


def use_json_core_logs(settings: Settings) -> None:
    """With LOG_FORMAT=json, make Temporal's default runtime forward Core's lines to Python
    logging: for a process whose clients use the default runtime (the API). Call it before
    the first client connects."""
    if settings.log_format == "json":
        runtime = Runtime(telemetry=TelemetryConfig(logging=_core_logs(settings)))
        Runtime.set_default(runtime, error_if_already_set=False)


def _core_logs(settings: Settings) -> LoggingConfig:
    """Core's (Rust) log lines: to stderr as Temporal prints them, or, for LOG_FORMAT=json,
    through Python logging (the JSON handler and its redaction), at the same levels."""
    if settings.log_format != "json":
        return LoggingConfig.default
    return LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger(CORE_LOGGER)),
    )
