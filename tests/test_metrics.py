"""Prometheus metrics (docs/observability.md): the API's GET /metrics and the
worker's endpoint at WORKER_METRICS_ADDRESS, scraped over HTTP after a real run, agree with
what ran; off unless set; /metrics takes an admin key when API_METRICS_PUBLIC=false."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime

from activities.runtime.settings import Settings, load_settings
from activities.runtime.temporal_client import connect
from activities.runtime.temporal_runtime import worker_runtime
from api.cli.devstack import free_port
from api.server.main import create_app
from tests.conftest import ADMIN_KEY, TEST_KEYS, outcome, serve_api, start_definition
from tests.fakes import FakeOpenRouter, HttpSink, Reply
from worker import engine_worker

Samples = list[tuple[str, dict[str, str], float]]
ROOT = Path(__file__).resolve().parent.parent
AI_MODEL = "test/model-a"
METRICS_KEY = "prometheus-scrape-key-0123456789"


_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> Samples:
    """Samples of the text format with their names as written (prometheus_client's parser
    would rename Temporal's counters, which have no `_total`, to OpenMetrics names)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = {k: v.encode().decode("unicode_escape") for k, v in _LABEL.findall(match[2] or "")}
        samples.append((match[1], labels, float(match[3])))
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for sample, have, value in samples
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


def by(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    counts: dict[tuple[str, ...], float] = {}
    for sample, labels, value in samples:
        if sample == name:
            key = tuple(labels.get(k, "") for k in keys)
            counts[key] = counts.get(key, 0) + value
    return counts


def definition(sink: HttpSink) -> dict[str, Any]:
    return {
        "id": "metrics-tour",
        "steps": [
            {"id": "fetch", "type": "http", "url": f"{sink.url}/ok", "output": "r"},
            {"id": "ask", "type": "ai", "model": AI_MODEL, "prompt": "hi", "output": "a"},
            {"id": "note", "type": "set", "values": {"seen": "{r.status}"}},
            {"id": "broken", "type": "http", "url": f"{sink.url}/fail",
             "retry": {"max_attempts": 1}, "on_error": "continue"},
            {"id": "route", "type": "condition",
             "branches": [{"when": "r.status == 200", "next": "end"}], "default": "stop"},
            {"id": "stop", "type": "fail", "message": "unreachable"},
        ],
    }  # fmt: skip


def test_metrics_are_off_unless_set(settings: Settings, client: Client) -> None:
    assert settings.worker_metrics_address is None
    assert worker_runtime(settings) is None  # Temporal's default runtime: nothing served
    # The suite's client runs on the default runtime, whose meter records nothing.
    assert client.service_client.config.runtime in (None, Runtime.default())
    assert Runtime.default().metric_meter is MetricMeter.noop


@pytest.fixture
async def metered(settings: Settings) -> AsyncIterator[tuple[Settings, Client]]:
    """A client on a runtime serving metrics on a free loopback port. No cached runs: every
    workflow task replays the run's history first, and nothing may be counted twice."""
    own = settings.model_copy(
        update={
            "worker_metrics_address": f"127.0.0.1:{free_port()}",
            "worker_max_cached_workflows": 0,
        }
    )
    runtime = worker_runtime(own)
    assert runtime is not None
    yield own, await connect(own, runtime=runtime)


async def test_worker_and_api_metrics_agree_with_what_ran(
    metered: tuple[Settings, Client], sink: HttpSink, fake_openrouter: FakeOpenRouter
) -> None:
    settings, client = metered
    sink.script("/fail", Reply(500, {"error": "down"}), Reply(500, {"error": "down"}))
    document = definition(sink)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        engine_worker(client, settings) as worker,
        worker,
        serve_api(settings, client) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as api,
    ):
        saved = await api.put(f"/api/workflows/{document['id']}", json=document)
        assert saved.status_code == 201, saved.text
        executions = []
        for _ in range(2):
            run = await api.post(
                "/api/workflows/run",
                params={"wait": "true", "timeout": "50"},
                json={"workflow_id": document["id"], "input_vars": {}},
            )
            assert run.status_code == 200, run.text
            assert run.json()["status"] == "completed", run.json()
            executions.append(run.json()["execution_id"])
        steps = []
        for execution_id in executions:
            status = await api.get(f"/api/executions/{execution_id}")
            assert status.status_code == 200
            steps += status.json()["steps"]
        assert (await api.get("/no/such/path")).status_code == 404
        assert (await httpx.AsyncClient(base_url=url).get("/api/workflows")).status_code == 401
        api_text = (await api.get("/metrics")).text
        assert settings.worker_metrics_address is not None
        scraped = await httpx.AsyncClient().get(f"http://{settings.worker_metrics_address}/metrics")
        assert scraped.status_code == 200
    worker_samples = parse(scraped.text)
    api_samples = parse(api_text)

    # Steps by definition, type and status, exactly as the status answers list them, though
    # every workflow task replayed the run from its history (no cache).
    ran = Counter(("metrics-tour", s["type"], s["status"]) for s in steps)
    assert ran == {
        ("metrics-tour", "http", "success"): 2,
        ("metrics-tour", "http", "failed"): 2,
        ("metrics-tour", "ai", "success"): 2,
        ("metrics-tour", "set", "success"): 2,
        ("metrics-tour", "condition", "success"): 2,
    }
    counted = by(worker_samples, "wfe_steps_total", "workflow_id", "type", "status")
    assert counted == ran
    assert {labels["task_queue"] for name, labels, _ in worker_samples
            if name == "wfe_steps_total"} == {settings.temporal_task_queue}  # fmt: skip
    durations = by(worker_samples, "wfe_step_duration_seconds_count", "type")
    assert durations == {("http",): 4, ("ai",): 2, ("set",): 2, ("condition",): 2}
    assert total(worker_samples, "wfe_step_duration_seconds_bucket", type="set", le="+Inf") == 2
    # AI usage: the fake provider answers 12 prompt and 5 completion tokens, $0.00042.
    assert len(fake_openrouter.completions()) == 2
    tokens = by(worker_samples, "wfe_ai_tokens_total", "model", "kind")
    assert tokens == {(AI_MODEL, "prompt"): 24, (AI_MODEL, "completion"): 10}
    assert total(worker_samples, "wfe_ai_cost_usd_total", model=AI_MODEL) == pytest.approx(0.00084)
    # Temporal's own SDK metrics on the same endpoint.
    completed = by(worker_samples, "temporal_workflow_completed", "workflow_type")
    assert completed[("WorkflowExecutor",)] == 2
    failed = by(worker_samples, "temporal_activity_execution_failed", "activity_type")
    assert failed[("send_http_request",)] == 2

    # The API: starts by definition, requests by route template and status code.
    started = by(api_samples, "wfe_executions_started_total", "workflow_id", "trigger")
    assert started == {("metrics-tour", "api"): 2}
    requests = by(api_samples, "wfe_api_requests_total", "method", "route", "status")
    assert requests[("PUT", "/api/workflows/{workflow_id}", "201")] == 1
    assert requests[("POST", "/api/workflows/run", "200")] == 2
    assert requests[("GET", "/api/executions/{execution_id}", "200")] == 2
    assert requests[("GET", "unmatched", "404")] == 1
    assert requests[("GET", "/api/workflows", "401")] == 1
    assert ("GET", "/metrics", "200") not in requests  # counted once it has been answered
    latency = by(api_samples, "wfe_api_request_duration_seconds_count", "method", "route")
    assert latency[("POST", "/api/workflows/run")] == 2

    # The Grafana dashboard (docs/) queries only series these two endpoints really serve.
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    queried = {name for expr in exprs for name in re.findall(r"\b(?:wfe|temporal)_\w+", expr)}
    served = {name for name, _, _ in worker_samples + api_samples}
    assert queried <= served, sorted(queried - served)
    print(
        "worker:", dict(counted), dict(tokens),
        "\napi:", dict(started), {k: v for k, v in requests.items()},
    )  # fmt: skip


async def test_model_labels_are_bounded_per_worker_process(
    metered: tuple[Settings, Client], fake_openrouter: FakeOpenRouter
) -> None:
    """A run's inputs may name its model: past WORKER_METRICS_MAX_MODELS distinct names the
    worker counts them as model="other", so callers cannot add series without end."""
    settings, client = metered
    settings = settings.model_copy(update={"worker_metrics_max_models": 2})
    document = {
        "id": "any-model",
        "inputs": {"type": "object", "properties": {"model": {"type": "string"}}},
        "steps": [{"id": "ask", "type": "ai", "model": "{model}", "prompt": "hi", "output": "a"}],
    }
    models = ["caller/a", "caller/b", "caller/c", "caller/d", "caller/a", "x" * 150]
    async with engine_worker(client, settings) as worker, worker:
        for model in models:
            handle = await start_definition(client, settings, document, {"model": model})
            assert (await outcome(handle))["status"] == "completed"
        assert settings.worker_metrics_address is not None
        scraped = await httpx.AsyncClient().get(f"http://{settings.worker_metrics_address}/metrics")
    tokens = by(parse(scraped.text), "wfe_ai_tokens_total", "model", "kind")
    print("tokens by model:", tokens)
    assert {model for model, _ in tokens} == {"caller/a", "caller/b", "other"}
    assert tokens[("caller/a", "prompt")] == 24  # two answers, 12 prompt tokens each
    assert tokens[("other", "prompt")] == 36  # c, d and the overlong name
    costs = by(parse(scraped.text), "wfe_ai_cost_usd_total", "model")
    assert set(costs) == {("caller/a",), ("caller/b",), ("other",)}


async def test_metrics_take_the_metrics_key_or_an_admin_key(
    settings: Settings, client: Client
) -> None:
    """/metrics names every definition id: by default it takes API_METRICS_KEY (which opens
    nothing else) or an admin key; only API_METRICS_PUBLIC=true serves it keyless."""
    keys = [*TEST_KEYS, {"key": "viewer-key-0123456789", "name": "v", "role": "viewer",
                         "workflows": "*"}]  # fmt: skip
    keyed = load_settings(api_keys=json.dumps(keys), api_metrics_key=METRICS_KEY)
    assert not keyed.api_metrics_public  # the default
    private = settings.model_copy(
        update={"api_keys": keyed.api_keys, "api_metrics_key": keyed.api_metrics_key}
    )
    async with serve_api(private, client) as url, httpx.AsyncClient(base_url=url) as api:
        save = await api.put(
            "/api/workflows/secret-team-flow",
            json={
                "id": "secret-team-flow",
                "steps": [{"id": "a", "type": "set", "values": {"x": 1}}],
            },
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert save.status_code == 201, save.text
        keyless = await api.get("/metrics")
        assert keyless.status_code == 401
        assert "secret-team-flow" not in keyless.text
        viewer = await api.get(
            "/metrics", headers={"Authorization": "Bearer viewer-key-0123456789"}
        )
        assert viewer.status_code == 403
        for key in (METRICS_KEY, ADMIN_KEY):
            answer = await api.get("/metrics", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/plain")
            assert "wfe_api_requests_total" in answer.text
        # The metrics key opens /metrics and nothing else.
        other = await api.get("/api/workflows", headers={"Authorization": f"Bearer {METRICS_KEY}"})
        assert other.status_code == 401
        wrong = await api.get("/metrics", headers={"Authorization": "Bearer x" * 3})
        assert wrong.status_code == 401
    public = settings.model_copy(update={"api_metrics_public": True})
    async with serve_api(public, client) as url, httpx.AsyncClient(base_url=url) as api:
        assert (await api.get("/metrics")).status_code == 200  # the explicit opt-in


def test_metrics_is_not_in_the_openapi_document(settings: Settings) -> None:
    document = create_app(settings).openapi()
    assert "/metrics" not in document["paths"]


def test_metrics_settings_fail_fast_naming_the_variable() -> None:
    from workflows.errors import ConfigurationError

    for value in ("localhost:9464", "9464", "127.0.0.1:0", "::1:9464"):
        with pytest.raises(ConfigurationError, match="WORKER_METRICS_ADDRESS"):
            load_settings(worker_metrics_address=value)
    assert load_settings(worker_metrics_address="[::1]:9464").worker_metrics_address
    assert load_settings(worker_metrics_address="").worker_metrics_address is None
    with pytest.raises(ConfigurationError, match="API_METRICS_PUBLIC"):
        load_settings(api_metrics_public="sometimes")
    with pytest.raises(ConfigurationError, match=r"API_METRICS_KEY: .*16 characters"):
        load_settings(api_metrics_key="short")
    with pytest.raises(ConfigurationError, match="WORKER_METRICS_MAX_MODELS"):
        load_settings(worker_metrics_max_models=0)


def test_a_taken_metrics_address_fails_naming_the_variable(settings: Settings) -> None:
    import socket

    from workflows.errors import ConfigurationError

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = settings.model_copy(
            update={"worker_metrics_address": f"127.0.0.1:{holder.getsockname()[1]}"}
        )
        with pytest.raises(ConfigurationError, match=r"WORKER_METRICS_ADDRESS.*in use"):
            worker_runtime(taken)
