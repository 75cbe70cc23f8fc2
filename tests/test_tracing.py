"""OpenTelemetry tracing (docs/observability.md): with OTEL_EXPORTER_OTLP_ENDPOINT
set, one trace runs from `POST /api/workflows/run` through the workflow to every step's
activity, exported over OTLP/HTTP (protobuf) to a real receiver on loopback; unset, nothing
of OpenTelemetry is set up."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from temporalio.client import Client

from activities.runtime.settings import Settings, load_settings
from activities.runtime.temporal_client import connect
from activities.runtime.tracing import (
    API_SERVICE,
    WORKER_SERVICE,
    flush_tracing,
    shutdown_tracing,
    tracer_provider,
    tracing_interceptors,
)
from tests.conftest import ADMIN_KEY, OPENROUTER_TEST_KEY, eventually, serve_api
from tests.fakes import HttpSink
from worker import engine_worker
from workflows.errors import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: tuple[tuple[str, str], ...] = ()


class OtlpReceiver:
    """A collector's OTLP/HTTP traces endpoint: POST /v1/traces, protobuf in and out."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.posts: list[str] = []  # content types received
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver.record(self.headers.get("Content-Type", ""), body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def record(self, content_type: str, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            service=attributes.get("service.name", ""),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes=tuple(
                                (a.key, str(a.value.string_value or a.value.int_value))
                                for a in span.attributes
                            ),
                        )
                    )
        with self._lock:
            self.posts.append(content_type)
            self.spans.extend(spans)

    def named(self, name: str) -> list[Span]:
        with self._lock:
            return [span for span in self.spans if span.name == name]

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as server:
        yield server


@pytest.fixture
async def traced(settings: Settings, receiver: OtlpReceiver) -> AsyncIterator[Settings]:
    own = settings.model_copy(update={"otel_exporter_otlp_endpoint": receiver.url})
    yield own
    for service in (API_SERVICE, WORKER_SERVICE):
        shutdown_tracing(own, service)


# Built with tracing off, the API and the worker load none of the tracing machinery (FastAPI
# itself imports the bare OpenTelemetry API, a no-op without an SDK).
UNTRACED_PROCESS = """
import sys
from api.server.main import create_app
from worker import engine_worker
from activities.runtime.settings import load_settings
app = create_app(load_settings())
assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
loaded = [m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.exporter",
          "opentelemetry.instrumentation", "temporalio.contrib.opentelemetry"))]
assert not loaded, loaded
print("untraced")
"""


def test_tracing_is_off_unless_set(settings: Settings) -> None:
    assert settings.otel_exporter_otlp_endpoint is None
    assert tracer_provider(settings, API_SERVICE) is None
    assert tracing_interceptors(settings, WORKER_SERVICE) == []
    names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    done = subprocess.run(
        [sys.executable, "-c", UNTRACED_PROCESS],
        env={**env, "AUTH_DISABLED": "true"}, cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "untraced" in done.stdout, done.stderr


def test_the_endpoint_setting_fails_fast_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        load_settings(otel_exporter_otlp_endpoint="collector:4318")
    assert load_settings(otel_exporter_otlp_endpoint="").otel_exporter_otlp_endpoint is None
    url = load_settings(otel_exporter_otlp_endpoint="http://collector:4318/")
    assert url.otel_exporter_otlp_endpoint == "http://collector:4318"


async def test_one_trace_from_the_api_request_to_every_activity(
    traced: Settings, receiver: OtlpReceiver, sink: HttpSink
) -> None:
    settings = traced
    # As in production: the API's client traces as wfe-api, the worker's as wfe-worker.
    api_client: Client = await connect(settings, service_name=API_SERVICE)
    worker_client: Client = await connect(settings, service_name=WORKER_SERVICE)
    document = {
        "id": "traced",
        "steps": [
            {"id": "first", "type": "http", "url": f"{sink.url}/one", "output": "one"},
            {"id": "note", "type": "set", "values": {"seen": "{one.status}"}},
            {"id": "second", "type": "http", "url": f"{sink.url}/two", "output": "two"},
        ],
    }
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        engine_worker(worker_client, settings) as worker,
        worker,
        serve_api(settings, api_client) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api,
    ):
        assert (await api.put("/api/workflows/traced", json=document)).status_code == 201
        run = await api.post(
            "/api/workflows/run",
            # A query may carry a secret: the span must not (as the access log does not).
            params={"wait": "true", "timeout": "50", "note": OPENROUTER_TEST_KEY, "t": "tok3n"},
            json={"workflow_id": "traced", "input_vars": {}},
        )
        assert run.status_code == 200, run.text
        assert run.json()["status"] == "completed"
        execution_id = run.json()["execution_id"]
        assert (await api.get("/healthz")).status_code == 200  # not traced
    assert len(sink.deliveries()) == 2

    def exported() -> bool:
        flush_tracing()
        return len(receiver.named("RunActivity:send_http_request")) >= 2 and bool(
            receiver.named("POST /api/workflows/run")
        )

    await eventually(exported, timeout=15)
    (request,) = receiver.named("POST /api/workflows/run")
    assert request.service == API_SERVICE
    attributes = dict(request.attributes)
    print("request span attributes:", attributes)
    assert attributes["http.target"] == "/api/workflows/run"
    assert attributes["http.url"].endswith("/api/workflows/run"), attributes
    exported = repr(receiver.spans)
    assert OPENROUTER_TEST_KEY not in exported and "tok3n" not in exported
    trace = [span for span in receiver.spans if span.trace_id == request.trace_id]
    names = sorted({(span.service, span.name) for span in trace})
    print("trace", request.trace_id, "spans:", len(trace), names)
    ids = {span.span_id: span for span in trace}

    (start,) = [s for s in trace if s.name == "StartWorkflow:WorkflowExecutor"]
    assert start.service == API_SERVICE and start.parent_id == request.span_id
    (workflow,) = [s for s in trace if s.name == "RunWorkflow:WorkflowExecutor"]
    assert workflow.service == WORKER_SERVICE and workflow.parent_id == start.span_id
    activities = [s for s in trace if s.name == "RunActivity:send_http_request"]
    assert len(activities) == 2
    for activity in activities:
        assert activity.service == WORKER_SERVICE
        scheduled = ids[activity.parent_id]  # the workflow's StartActivity span
        assert scheduled.name == "StartActivity:send_http_request"
        assert scheduled.service == WORKER_SERVICE
    # Every span of the trace descends from the API request's span (no orphans).
    for span in trace:
        chain, parent = [], span.parent_id
        while parent in ids:
            chain.append(parent)
            parent = ids[parent].parent_id
        assert span is request or request.span_id in chain, span
    # Nothing of this run escaped into another trace; probes are not traced.
    assert all(span.trace_id == request.trace_id for span in receiver.spans
               if "send_http_request" in span.name or "WorkflowExecutor" in span.name)  # fmt: skip
    assert not [span for span in receiver.spans if "healthz" in span.name]
    assert set(receiver.posts) == {"application/x-protobuf"}
    assert execution_id
