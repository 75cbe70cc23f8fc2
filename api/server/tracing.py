"""Tracing of the API's requests (OpenTelemetry's FastAPI instrumentation), when
OTEL_EXPORTER_OTLP_ENDPOINT is set; activities/runtime/tracing.py makes the provider.

Each request is a server span (``POST /api/workflows/run``); the Temporal client's spans
(``StartWorkflow:...``) are its children, and through the workflow's headers so are the
worker's. Probes and scrapes are not traced: they would be most of the spans.

Spans leave the process (to a collector, often another team's backend), so their URL
attributes are scrubbed as the log lines are (activities/secrets.py): no query string, no
credentials, and the workflow secrets and OpenRouter key redacted in any encoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from activities.runtime.settings import Settings
from activities.runtime.tracing import API_SERVICE, tracer_provider
from activities.secrets import SecretStore, scrub_urls
from api.server.log_context import api_secret_store

# Regexes (comma-separated) searched in the request URL: probes, scrapes and the docs page.
UNTRACED_PATHS = r"://[^/]*/(healthz|readyz|metrics|openapi\.json)$,://[^/]*/docs(/|$)"
# The request's URL as the instrumentation records it (old and new semantic conventions):
# a query string may carry a token, and the access log would not show it either.
URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.path")
QUERY_ATTRIBUTES = ("url.query",)


def scrub_url(value: str, store: SecretStore) -> str:
    """A URL or a request target without its query and credentials, secrets redacted."""
    cut = scrub_urls(value) if "://" in value else value.split("?", 1)[0]
    return str(store.redact(cut))


def redacting_hook(store: SecretStore) -> Callable[[Any, dict[str, Any]], None]:
    """The instrumentation's server_request_hook: rewrites the span's URL attributes right
    after it set them, before anything is exported."""

    def hook(span: Any, scope: dict[str, Any]) -> None:
        if span is None or not span.is_recording():
            return
        attributes = getattr(span, "attributes", None) or {}
        for name in URL_ATTRIBUTES:
            value = attributes.get(name)
            if isinstance(value, str):
                span.set_attribute(name, scrub_url(value, store))
        for name in QUERY_ATTRIBUTES:
            if name in attributes:
                span.set_attribute(name, "[REDACTED]")

    return hook


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
        server_request_hook=redacting_hook(api_secret_store(settings)),
    )
    return True
