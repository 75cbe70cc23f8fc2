"""Tracing of the API's requests (OpenTelemetry's FastAPI instrumentation), when
OTEL_EXPORTER_OTLP_ENDPOINT is set; workflows/runtime/tracing.py makes the provider.

Each request is a server span (``POST /api/workflows/run``); the Temporal client's spans
(``StartWorkflow:...``) are its children, and through the workflow's headers so are the
worker's. Probes and scrapes are not traced: they would be most of the spans.
"""

from __future__ import annotations

from fastapi import FastAPI

from workflows.runtime.settings import Settings
from workflows.runtime.tracing import API_SERVICE, tracer_provider

# Regexes (comma-separated) searched in the request URL: probes, scrapes and the docs page.
UNTRACED_PATHS = r"://[^/]*/(healthz|readyz|metrics|openapi\.json)$,://[^/]*/docs(/|$)"


def instrument_app(app: FastAPI, settings: Settings) -> bool:
    """Trace ``app``'s requests as ``wfe-api``; False (and nothing imported) when off."""
    provider = tracer_provider(settings, API_SERVICE)
    if provider is None:
        return False
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_PATHS,
        # One span per request, not one per ASGI message sent or received.
        exclude_spans=["receive", "send"],
    )
    return True
