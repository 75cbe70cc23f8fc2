"""What the API adds for operators (docs/observability.md): Prometheus metrics at /metrics,
JSON log lines (LOG_FORMAT=json) and OpenTelemetry traces (OTEL_EXPORTER_OTLP_ENDPOINT)."""

from __future__ import annotations

from fastapi import FastAPI

from activities.runtime.settings import Settings
from api.server.log_context import RequestLogContext, configure_api_logging
from api.server.metrics import ApiMetrics, RequestMetrics
from api.server.metrics import router as metrics_router
from api.server.tracing import instrument_app


def install_observability(app: FastAPI, settings: Settings) -> None:
    """Call once the app's own middleware is added: what is added here wraps it."""
    metrics = ApiMetrics()
    app.state.metrics = metrics
    app.include_router(metrics_router)
    if configure_api_logging(settings):
        app.add_middleware(RequestLogContext)
    # Outside BodySizeLimit and the request's log context: refusals are counted too.
    app.add_middleware(RequestMetrics, metrics=metrics)
    # Outermost (the instrumentation wraps the whole stack): the span covers everything.
    instrument_app(app, settings)
