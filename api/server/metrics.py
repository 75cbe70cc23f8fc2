"""The API's Prometheus metrics: `GET /metrics` (text format), one registry per app.

- ``wfe_api_requests_total{method,route,status}``: answered requests, by route template
  (``/api/executions/{execution_id}``, never the raw path: bounded label values; requests no
  route matched are ``route="unmatched"``);
- ``wfe_api_request_duration_seconds{method,route}``: latency histogram;
- ``wfe_executions_started_total{workflow_id,trigger}``: starts the API answered, by
  definition, ``trigger`` ``api`` (POST /api/workflows/run) or ``webhook``. A repeated
  Idempotency-Key request answers the execution it already started and is counted again.

`/metrics` names every definition's id, which the rest of the API shows only to keys scoped
to it, so it takes a key: API_METRICS_KEY (a key for /metrics alone, what Prometheus is given)
or an admin key; API_METRICS_PUBLIC=true serves it to anyone who reaches the port. It is not in
the OpenAPI document (an operations endpoint).
Each API process has its own registry: scrape every process (or run one per container).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import prometheus_client
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

from api.server.asgi import HttpMiddleware
from api.server.auth import Principal
from api.server.deps import StateDep, bearer, current_key
from api.server.errors import ApiError

# From a 1 ms answer to a ?wait=true start that waits its full API_MAX_WAIT_SECONDS.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
)  # fmt: skip
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class ApiMetrics:
    """The metrics of one app (its own registry: several apps may share a test process)."""

    def __init__(self) -> None:
        # `_created` series double every counter and histogram for little use here.
        prometheus_client.disable_created_metrics()
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "wfe_api_requests",
            "HTTP requests answered, by method, route template and status code",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "wfe_api_request_duration_seconds",
            "Time to answer a request, by method and route template",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.executions_started = Counter(
            "wfe_executions_started",
            "Executions started through the API, by workflow (definition) id and trigger",
            ("workflow_id", "trigger"),
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def started(self, workflow_id: str, trigger: str) -> None:
        self.executions_started.labels(workflow_id, trigger).inc()

    def render(self) -> bytes:
        return prometheus_client.generate_latest(self.registry)


def api_metrics(request: Request) -> ApiMetrics:
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


def route_template(scope: dict[str, Any]) -> str:
    """The matched route's path template (a mount's prefix), or "unmatched"."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class RequestMetrics(HttpMiddleware):
    """ASGI middleware: counts and times every HTTP request by route template and status.

    Outermost of the app's own middleware, so 413s and 429s count too. An exception that
    escapes the app is counted as the 500 Starlette then answers.
    """

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def http(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        status = 500

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The router wrote the matched route into this same scope while routing.
            self.metrics.observe(
                scope["method"], route_template(scope), status, time.perf_counter() - started
            )


async def metrics_access(request: Request, state: StateDep) -> None:
    """API_METRICS_KEY or an admin key (401 without a valid key, 403 for another role);
    anyone who can reach the port when API_METRICS_PUBLIC=true."""
    if state.settings.api_metrics_public:
        return
    credentials = await bearer(request)
    metrics_key = state.settings.api_metrics_key
    if credentials is not None and metrics_key is not None:
        presented = hashlib.sha256(credentials.credentials.encode()).digest()
        expected = hashlib.sha256(metrics_key.get_secret_value().encode()).digest()
        if secrets.compare_digest(presented, expected):
            return
    principal: Principal = await current_key(request, state, credentials)
    if principal.role != "admin":
        raise ApiError(
            403, "forbidden", "metrics need API_METRICS_KEY or an admin key (API_METRICS_PUBLIC)"
        )


router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_access)])
async def metrics(request: Request) -> Response:
    # The classic text format (0.0.4): what every Prometheus version parses.
    return Response(
        api_metrics(request).render(), media_type=prometheus_client.CONTENT_TYPE_PLAIN_0_0_4
    )
