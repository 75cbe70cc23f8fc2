"""OpenTelemetry tracing: one OTLP/HTTP exporting tracer provider per service of a process.

With OTEL_EXPORTER_OTLP_ENDPOINT set, the API (``wfe-api``) and the worker (``wfe-worker``)
export spans to ``<endpoint>/v1/traces`` (protobuf). Temporal's ``TracingInterceptor`` on the
client carries the trace from ``start_workflow`` through the workflow (``RunWorkflow:...``,
``StartActivity:...``) to each activity (``RunActivity:...``); workers built on that client
use it too. Unset, none of this is imported and nothing is traced.

Providers are explicit, never the process-global one: the API and a worker can share a test
process with their own service names, and nothing else in the process is traced by surprise.
The exporter reads the standard OTEL_EXPORTER_OTLP_HEADERS / _TIMEOUT / _CERTIFICATE variables
itself; the batch processor reads OTEL_BSP_*.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from activities.runtime.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.client import Interceptor

API_SERVICE = "wfe-api"
WORKER_SERVICE = "wfe-worker"
TRACES_PATH = "/v1/traces"

_providers: dict[tuple[str, str], TracerProvider] = {}
_lock = threading.Lock()


def tracer_provider(settings: Settings, service_name: str) -> TracerProvider | None:
    """The provider exporting ``service_name``'s spans, or None when tracing is off. The same
    endpoint and service name give the same provider (one exporter and batch per service)."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint is None:
        return None
    with _lock:
        provider = _providers.get((endpoint, service_name))
        if provider is None:
            provider = _providers[(endpoint, service_name)] = _new_provider(endpoint, service_name)
        return provider


def _new_provider(endpoint: str, service_name: str) -> TracerProvider:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES (deployment, region, ...).
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint + TRACES_PATH)))
    return provider


def tracing_interceptors(settings: Settings, service_name: str) -> list[Interceptor]:
    """Temporal's tracing interceptor for a client (and the workers built on it), or none."""
    provider = tracer_provider(settings, service_name)
    if provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(provider.get_tracer("workflow-engine"))]


def flush_tracing(timeout_millis: int = 5000) -> bool:
    """Export every span ended so far, from every provider of this process."""
    with _lock:
        providers = list(_providers.values())
    return all(provider.force_flush(timeout_millis) for provider in providers)


def shutdown_tracing(settings: Settings, service_name: str) -> None:
    """Export what is left and stop ``service_name``'s provider (at process or app exit)."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if endpoint is None:
        return
    with _lock:
        provider = _providers.pop((endpoint, service_name), None)
    if provider is not None:
        provider.shutdown()
