"""Flow control (docs/flow-control.md): concurrency per key, against the real stack.

What a user sees: the API's answers (status, waiting_for, the place in the queue), `wfe
status`, and the runs' histories (never more in flight than the limit, nobody lost or let
through twice, also across a worker restart)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import itertools
import logging
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment

from activities import flow_control
from activities.flow_control import FlowControlActivities
from activities.rate_limits import LATE_SECONDS
from activities.runtime.settings import AIRateLimit, Settings
from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import DevServer
from tests.conftest import eventually, save_definition, serve_api, start_definition
from tests.fakes import FakeOpenRouter, HttpSink, Recorded, Reply, openrouter_error
from tests.test_cli import wfe
from worker import engine_worker
from worker import main as worker_main
from workflows.errors import ConfigurationError
from workflows.flow.keys import concurrency_claim
from workflows.flow.messages import (
    CONCURRENCY_COORDINATOR,
    GRANT_SIGNAL,
    PLACE_SIGNAL,
    PLACE_UPDATE,
    RELEASE_SIGNAL,
    REQUEST_PLACE,
    STATE_QUERY,
    CoordinatorState,
    PlaceRequest,
    RequestPlace,
)
from workflows.validation import load_definition

Handle = WorkflowHandle[Any, Any]


def gated(workflow_id: str, limit: int, key: str | None = "{customer}") -> dict[str, Any]:
    """Runs wait for a `go` signal: the test decides when each one ends."""
    concurrency: dict[str, Any] = {"limit": limit}
    if key is not None:
        concurrency["key"] = key
    return {
        "id": workflow_id,
        "concurrency": concurrency,
        "steps": [{"id": "hold", "type": "wait_for_signal", "signal": "go"}],
    }


async def start(http: httpx.AsyncClient, workflow_id: str, **inputs: Any) -> str:
    answer = await http.post(
        "/api/workflows/run", json={"workflow_id": workflow_id, "input_vars": inputs}
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["execution_id"])


async def status(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    answer = await http.get(f"/api/executions/{execution_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def holding(http: httpx.AsyncClient, execution_id: str) -> bool:
    """The run got its place: its step runs."""
    return (await status(http, execution_id)).get("current_step") == "hold"


async def place(http: httpx.AsyncClient, execution_id: str) -> int | None:
    state = await status(http, execution_id)
    if state["status"] != "running" or state.get("waiting_for") != "concurrency":
        return None
    return state.get("waiting_place")


async def test_limit_per_key_queue_in_order_cancel_and_finish_free_places(
    http: httpx.AsyncClient, api_url: str, settings: Settings
) -> None:
    save_definition(settings, gated("per-customer", 2))
    first = [await start(http, "per-customer", customer="acme") for _ in range(2)]
    for execution_id in first:
        await eventually(lambda e=execution_id: holding(http, e))
    queued = [await start(http, "per-customer", customer="acme") for _ in range(3)]
    # Another key has places of its own.
    other = await start(http, "per-customer", customer="globex")
    await eventually(lambda: holding(http, other))
    for number, execution_id in enumerate(queued, start=1):
        await eventually(lambda e=execution_id, n=number: _is(place(http, e), n))
    state = await status(http, queued[0])
    assert state["status"] == "running" and state["concurrency_key"] == "acme"
    shown = await wfe(api_url, "status", queued[1])
    assert "a concurrency place (key acme), number 2 in the queue" in shown.output, shown.output
    # A queued run is cancellable, and the ones behind it move up.
    cancelled = await http.post(f"/api/executions/{queued[0]}/cancel")
    assert cancelled.status_code == 202
    await eventually(lambda: _is(place(http, queued[1]), 1))
    # A finished run frees its place at once: the next in line starts.
    await http.post(f"/api/executions/{first[0]}/signals/go", json={})
    await eventually(lambda: holding(http, queued[1]))
    assert await place(http, queued[2]) == 1
    # It handed its turn back before its last log write: its status may say so a moment later.
    await eventually(lambda: _status_is(http, queued[0], "cancelled"))
    # A failed run frees it too (here: cancelled while holding).
    await http.post(f"/api/executions/{first[1]}/cancel")
    await eventually(lambda: holding(http, queued[2]))
    for execution_id in (queued[1], queued[2], other):
        await http.post(f"/api/executions/{execution_id}/signals/go", json={})
    for execution_id in (queued[1], queued[2], other):
        await eventually(lambda e=execution_id: _status_is(http, e, "completed"))


async def test_a_terminated_holder_frees_its_place(
    http: httpx.AsyncClient, settings: Settings, client: Client
) -> None:
    save_definition(settings, gated("one-at-a-time", 1, key=None))
    holder = await start(http, "one-at-a-time")
    await eventually(lambda: holding(http, holder))
    waiter = await start(http, "one-at-a-time")
    await eventually(lambda: _is(place(http, waiter), 1))
    # Temporal ends the holder without our code running: the coordinator notices.
    await client.get_workflow_handle(holder).terminate(reason="test")
    await eventually(lambda: holding(http, waiter), timeout=15)
    await http.post(f"/api/executions/{waiter}/signals/go", json={})
    await eventually(lambda: _status_is(http, waiter, "completed"))


async def test_bad_keys_and_limits_are_refused(http: httpx.AsyncClient, settings: Settings) -> None:
    save_definition(settings, gated("keyed", 1, key="{tenant.id}"))
    answer = await http.post(
        "/api/workflows/run", json={"workflow_id": "keyed", "input_vars": {"tenant": {}}}
    )
    assert answer.status_code == 422, answer.text
    assert "concurrency.key '{tenant.id}'" in answer.text
    for bad in (0, 1001):
        saved = await http.put("/api/workflows/too-many", json=gated("too-many", bad))
        assert saved.status_code == 422, saved.text
        assert "concurrency" in saved.text and "limit" in saved.text


async def test_worker_restart_mid_queue_loses_nobody_and_doubles_nobody(
    client: Client, settings: Settings
) -> None:
    """Chaos, bounded: 9 runs on one key with limit 3; the worker is stopped and a new one
    started while runs hold places and others wait. All complete, and the histories show
    never more than 3 running a step at once."""
    document = {
        "id": "chaos-key",
        "concurrency": {"limit": 3},
        "steps": [{"id": "nap", "type": "delay", "seconds": 0.4}],
    }
    save_definition(settings, document)
    async with (
        serve_api(settings, client) as url,
        httpx.AsyncClient(base_url=url, timeout=30, headers=_admin()) as http,
    ):
        # No grace for what runs when it stops: what it was doing is simply dropped.
        abrupt = settings.model_copy(update={"worker_graceful_shutdown_seconds": 0})
        async with engine_worker(client, abrupt) as worker, worker:
            ids = [await start(http, "chaos-key") for _ in range(9)]
            await asyncio.sleep(0.8)
        # No worker for a moment: the waiting runs and the coordinator wait with it.
        await asyncio.sleep(0.5)
        async with engine_worker(client, settings) as worker, worker:
            for execution_id in ids:
                await eventually(
                    lambda e=execution_id: _status_is(http, e, "completed"), timeout=40
                )
    spans = [await _grant_to_end(client, execution_id) for execution_id in ids]
    assert _most_at_once(spans) <= 3
    assert len(spans) == 9


@pytest.mark.timeout(150)
async def test_server_restart_mid_queue_loses_nobody_and_doubles_nobody(
    settings: Settings, tmp_path: Path
) -> None:
    """Chaos, bounded: 9 runs on one key with limit 3 on a Temporal dev server of the test's
    own (the session's server is shared by other tests). The server is SIGKILLed and restarted
    on its SQLite file twice: while 3 runs hold places and 6 wait, and again while places are
    being handed on. Every run completes, started once; the coordinator granted 9 places (one
    per run: a repeated grant signal to a holder whose request was retried is no second place)
    and holds nothing at the end; the histories show never more than 3 running a step at once."""
    document = {
        "id": "chaos-server",
        "concurrency": {"limit": 3},
        "steps": [{"id": "nap", "type": "delay", "seconds": 1.0}],
    }
    log = (tmp_path / "temporal-own.log").open("ab")
    server = DevServer(db_file=tmp_path / "own.db", headless=True, log=log)
    try:
        async with server.running():
            own = settings.model_copy(update={"temporal_address": server.address})
            client = await connect_when_ready(own)
            async with engine_worker(client, own) as worker, worker:
                ids = [(await start_definition(client, own, document)).id for _ in range(9)]
                coordinator = _coordinator_of(client, document)
                await eventually(lambda: _granted(coordinator, at_least=3, waiting=6), timeout=60)
                await _restart(server)
                # The first places go back and are handed on: the server dies again meanwhile.
                client = await connect_when_ready(own)
                coordinator = _coordinator_of(client, document)
                await eventually(lambda: _granted(coordinator, at_least=5), timeout=60)
                await _restart(server)
                client = await connect_when_ready(own)
                for execution_id in ids:
                    handle = client.get_workflow_handle(execution_id)
                    await asyncio.wait_for(handle.result(), timeout=60)
                state = await _coordinator_of(client, document).query(
                    STATE_QUERY, result_type=CoordinatorState
                )
            spans = [await _grant_to_end(client, execution_id) for execution_id in ids]
            starts = [await _starts(client, execution_id) for execution_id in ids]
    finally:
        log.close()
    assert state.granted == 9 and state.holders == [] and state.queue == [], state
    assert starts == [1] * 9, starts
    assert len(spans) == 9
    assert _most_at_once(spans) <= 3


def _coordinator_of(client: Client, document: dict[str, Any]) -> Handle:
    claim = concurrency_claim(load_definition(document), {})
    assert claim is not None
    return client.get_workflow_handle(claim.coordinator_id)


async def _granted(coordinator: Handle, at_least: int, waiting: int = 0) -> bool:
    """The coordinator has granted ``at_least`` places, and ``waiting`` runs or more wait."""
    try:
        state = await coordinator.query(STATE_QUERY, result_type=CoordinatorState)
    except RPCError:  # not started yet, or the server is still coming back
        return False
    return state.granted >= at_least and len(state.queue) >= waiting


async def _restart(server: DevServer) -> None:
    """SIGKILL the server, leave it down a moment (the worker keeps trying), start it again on
    the same SQLite file and port."""
    server.kill()
    await asyncio.sleep(1.0)
    server.start()
    await server.wait_ready()


async def _starts(client: Client, execution_id: str) -> int:
    """How many times the execution started (a restart must not start it again)."""
    started = 0
    async for event in client.get_workflow_handle(execution_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started += 1
    return started


async def test_a_place_given_to_an_answer_nobody_awaits_is_still_granted(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a burst, a run's request by update may time out (the run then asks by signal and
    waits for a grant signal) while the update is still delivered, later than the signal. If
    that late update finds the place free, its answer "yours" reaches nobody: the run must
    still be told by signal, or it waits forever while its place is held for it."""
    document = {
        "id": "late-answer",
        "concurrency": {"limit": 1},
        "steps": [{"id": "one", "type": "set", "values": {"x": 1}}],
    }

    @activity.defn(name=REQUEST_PLACE)
    async def asked_by_signal(self: FlowControlActivities, request: RequestPlace) -> bool:
        return False  # the update timed out; the signal below is the request it sent instead

    monkeypatch.setattr(FlowControlActivities, "request_concurrency_place", asked_by_signal)
    run = await start_definition(client, settings, document)
    claim = concurrency_claim(load_definition(document), {})
    assert claim is not None
    request = PlaceRequest(execution_id=run.id, limit=1)
    # No worker yet: the coordinator's first workflow task sees the signal, then the update.
    await client.start_workflow(
        CONCURRENCY_COORDINATOR,
        CoordinatorState(workflow_id="late-answer", key=claim.key, limit=1),
        id=claim.coordinator_id,
        task_queue=settings.temporal_task_queue,
        start_signal=PLACE_SIGNAL,
        start_signal_args=[request],
    )
    coordinator = client.get_workflow_handle(claim.coordinator_id)
    late = asyncio.create_task(
        coordinator.execute_update(PLACE_UPDATE, request, id="late", result_type=bool)
    )
    await eventually(lambda: _admitted(coordinator, "late"))
    async with engine_worker(client, settings) as worker, worker:
        assert await late is True  # the place is the run's at once...
        # ... and the run, which waits for a grant signal, is told.
        await asyncio.wait_for(run.result(), timeout=30)


async def _admitted(handle: Handle, update_id: str) -> bool:
    """The server holds the update (waiting for a worker): asking for its outcome times out
    instead of answering that there is no such update."""
    try:
        await handle.get_update_handle(update_id).result(rpc_timeout=timedelta(seconds=0.5))
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        return True
    except RPCError:
        return False
    return True


async def _grant_to_end(client: Client, execution_id: str) -> tuple[float, float]:
    """From the run's history: when its step began (its place was its own by then) and when
    it handed the place back (before its last log write, so the run may still be closing
    when the next one starts: it runs no more steps)."""
    began = ended = 0.0
    async for event in client.get_workflow_handle(execution_id).fetch_history_events():
        at = event.event_time.ToDatetime().timestamp()
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED and not ended:
            began = at  # the last timer before the release: the step's (the first is the
            # run's deadline)
        released = (
            event.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
            and event.signal_external_workflow_execution_initiated_event_attributes.signal_name
            == RELEASE_SIGNAL
        )
        if released and not ended:
            ended = at
    assert began and ended, (execution_id, began, ended)
    return began, ended


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def _admin() -> dict[str, str]:
    from tests.conftest import ADMIN_KEY

    return {"Authorization": f"Bearer {ADMIN_KEY}"}


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _status_is(http: httpx.AsyncClient, execution_id: str, expected: str) -> bool:
    return bool((await status(http, execution_id))["status"] == expected)


class LimitedProvider(FakeOpenRouter):
    """A provider that allows ``limit`` requests in any ``window`` seconds, and answers 429
    past it (counted as it receives them, the way providers count)."""

    def __init__(self, limit: int, window: float, answer_delay: float = 0.0) -> None:
        super().__init__()
        self.limit, self.window, self.refused = limit, window, 0
        self._seen: list[float] = []
        self._delay = answer_delay

    def default_reply(self, record: Recorded) -> Reply:
        with self._lock:
            recent = [at for at in self._seen if at > record.at - self.window]
            self._seen.append(record.at)
            if len(recent) >= self.limit:
                self.refused += 1
                return Reply(429, openrouter_error(429, "Rate limit exceeded"))
        reply = super().default_reply(record)
        reply.delay = self._delay
        return reply


async def test_ai_calls_wait_their_turn_and_never_meet_a_429(
    client: Client, settings: Settings, sink: HttpSink
) -> None:
    """2 runs of 2 AI calls, a provider allowing 2 requests in any second: the calls past
    the first two wait their turn (visible as waiting_for rate_limit), none is refused."""
    provider = LimitedProvider(limit=2, window=1.0).start()
    limited = settings.model_copy(
        update={
            "openrouter_base_url": provider.base_url,
            "ai_rate_limits": {"openai/*": AIRateLimit(requests_per_minute=2)},
            "rate_limit_window_seconds": 1.0,
            "http_host_concurrency": {sink.url.removeprefix("http://"): 1},
        }
    )
    sink.script("/one", *[Reply(200, "ok", delay=0.3)] * 3)
    save_definition(limited, _one_request_at_a_time(sink))
    step = {"type": "ai", "model": "openai/gpt-4o-mini", "prompt": "hi",
            "retry": {"max_attempts": 1}}  # fmt: skip
    document = {"id": "limited-ai", "steps": [{"id": "a", **step}, {"id": "b", **step}]}
    save_definition(limited, document)
    try:
        async with (
            serve_api(limited, client) as url,
            httpx.AsyncClient(base_url=url, timeout=30, headers=_admin()) as http,
            engine_worker(client, limited) as worker,
            worker,
        ):
            ids = [await start(http, "limited-ai") for _ in range(2)]
            ids += [await start(http, "one-at-a-time-host") for _ in range(3)]
            seen_waiting = await eventually(lambda: _any_waits(http, ids, "rate_limit"), timeout=10)
            for execution_id in ids:
                await eventually(
                    lambda e=execution_id: _status_is(http, e, "completed"), timeout=30
                )
    finally:
        provider.stop()
    assert seen_waiting["waiting_until"]
    assert provider.refused == 0
    sent = sorted(record.at for record in provider.completions())
    assert len(sent) == 4
    # Two at a time, turns a window (plus a second's margin) apart: a call waiting ahead of
    # its turn goes at the turn, the first ones a moment after theirs (at most LATE_SECONDS).
    assert sent[-1] - sent[0] >= 2.0 - LATE_SECONDS
    # HTTP_HOST_CONCURRENCY 1: each request to the host arrived after the last one ended.
    arrivals = sorted(record.at for record in sink.deliveries("/one"))
    assert len(arrivals) == 3
    assert all(b - a >= 0.3 for a, b in itertools.pairwise(arrivals))


def _one_request_at_a_time(sink: HttpSink) -> dict[str, Any]:
    return {
        "id": "one-at-a-time-host",
        "steps": [{"id": "call", "type": "http", "method": "POST", "url": f"{sink.url}/one"}],
    }


async def _any_waits(http: httpx.AsyncClient, ids: list[str], reason: str) -> Any:
    for execution_id in ids:
        state = await status(http, execution_id)
        if state.get("waiting_for") == reason:
            return state
    return None


def test_a_rate_limit_setting_that_does_not_parse_stops_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's start reads the settings first: a bad one stops it, naming the variable
    (`python worker.py` prints it and exits non-zero)."""
    monkeypatch.setenv("AI_RATE_LIMITS", '{"openai/*": {"requests_per_min": 60}}')
    with pytest.raises(ConfigurationError, match="AI_RATE_LIMITS"):
        asyncio.run(worker_main())
    monkeypatch.setenv("AI_RATE_LIMITS", "openai/*=60")
    with pytest.raises(ConfigurationError, match=r"AI_RATE_LIMITS: .*JSON object"):
        asyncio.run(worker_main())
    monkeypatch.delenv("AI_RATE_LIMITS")
    monkeypatch.setenv("HTTP_HOST_CONCURRENCY", '{"api.example.com": 0}')
    with pytest.raises(ConfigurationError, match="HTTP_HOST_CONCURRENCY"):
        asyncio.run(worker_main())


async def test_a_burst_of_starts_collapses_into_one_run_with_the_last_inputs(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    document = {
        "id": "debounced",
        "debounce": {"key": "{customer}", "seconds": 1},
        "inputs": {
            "type": "object",
            "properties": {"customer": {"type": "string"}, "n": {"type": "integer"}},
        },
        "steps": [{"id": "keep", "type": "set", "values": {"seen": "{n}"}}],
    }
    save_definition(settings, document)
    answers = []
    for n in (1, 2, 3):
        answer = await http.post(
            "/api/workflows/run",
            json={"workflow_id": "debounced", "input_vars": {"customer": "acme", "n": n}},
        )
        assert answer.status_code == 202, answer.text
        answers.append(answer.json())
    other = await start(http, "debounced", customer="globex", n=9)
    ids = {answer["execution_id"] for answer in answers}
    assert len(ids) == 1 and other not in ids
    assert all(answer["starts_at"] for answer in answers)
    execution_id = ids.pop()
    # Not found until the window closes, then the one run.
    assert (await http.get(f"/api/executions/{execution_id}")).status_code == 404
    await eventually(lambda: _completed_once_found(http, execution_id), timeout=15)
    state = await status(http, execution_id)
    assert state["outputs"]["seen"] == 3  # the last start's inputs
    await eventually(lambda: _completed_once_found(http, other), timeout=15)
    # The window closed with its run: the next start is another run.
    assert await start(http, "debounced", customer="acme", n=4) != execution_id
    bad = await http.post(
        "/api/workflows/run", json={"workflow_id": "debounced", "input_vars": {"n": 1}}
    )
    assert bad.status_code == 422 and "debounce.key '{customer}'" in bad.text


async def _completed_once_found(http: httpx.AsyncClient, execution_id: str) -> bool:
    answer = await http.get(f"/api/executions/{execution_id}")
    return answer.status_code == 200 and answer.json()["status"] == "completed"


async def test_a_timed_out_place_request_leaves_no_unretrieved_error_in_the_log(
    client: Client,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a burst, a place request's update may time out before the coordinator answers; the
    run then asks by signal. The update-with-start's failed start outcome is the same error:
    retrieved, not left for asyncio to report as "Future exception was never retrieved" in the
    worker's log (one line per timed-out request in a burst: noise, nothing was lost)."""
    monkeypatch.setattr(flow_control, "UPDATE_WAIT", timedelta(microseconds=1))
    claim = concurrency_claim(load_definition(gated("noisy", 1)), {"customer": "acme"})
    assert claim is not None
    claim = claim.model_copy(update={"coordinator_id": f"{claim.coordinator_id}-{uuid.uuid4()}"})
    request = RequestPlace(claim=claim, workflow_id="noisy", execution_id="noisy-1")
    activities = FlowControlActivities(client)
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info, task_queue=settings.temporal_task_queue
    )
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        granted = await environment.run(activities.request_concurrency_place, request)
        gc.collect()
    assert granted is False  # asked by signal: the run waits for its grant
    coordinator = client.get_workflow_handle(claim.coordinator_id)
    try:
        assert (await coordinator.describe()).status is not None  # the signal started it
    finally:
        await coordinator.terminate("test")
    assert "never retrieved" not in caplog.text


async def test_a_place_is_handed_on_before_the_log_writes(
    http: httpx.AsyncClient, settings: Settings, client: Client
) -> None:
    """A run that ends hands its place back before its last log writes (the next run need not
    wait for them); a run that waited wrote its log while it waited, so once granted it starts
    its first step in the workflow task the grant wakes, with no log write first. The logs
    still hold every step."""
    save_definition(settings, gated("hand-off", 1))
    holder = await start(http, "hand-off", customer="acme")
    await eventually(lambda: holding(http, holder))
    waiter = await start(http, "hand-off", customer="acme")
    await eventually(lambda: _is(place(http, waiter), 1))
    await http.post(f"/api/executions/{holder}/signals/go", json={})
    await eventually(lambda: holding(http, waiter))
    await http.post(f"/api/executions/{waiter}/signals/go", json={})
    await eventually(lambda: _status_is(http, waiter, "completed"))
    ending = _after(await _events(client, holder), "go")
    released = ending.index(RELEASE_SIGNAL)
    assert "marker" not in ending[:released] and "marker" in ending[released:], ending
    granted = _after(await _events(client, waiter), GRANT_SIGNAL)
    first_task = granted[: granted.index("task completed") + 1]
    assert "marker" not in first_task, granted
    for execution_id in (holder, waiter):
        log = (await http.get(f"/api/executions/{execution_id}/log")).json()
        assert log["status"] == "completed"
        assert [(s["step_id"], s["status"]) for s in log["steps"]] == [("hold", "success")]


async def _events(client: Client, execution_id: str) -> list[str]:
    """The run's history, in short: signals received and sent by name, markers (local
    activities: the log writes), timers and completed workflow tasks."""
    named = {
        EventType.EVENT_TYPE_MARKER_RECORDED: "marker",
        EventType.EVENT_TYPE_TIMER_STARTED: "timer",
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: "task completed",
    }
    events: list[str] = []
    async for event in client.get_workflow_handle(execution_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            events.append(event.workflow_execution_signaled_event_attributes.signal_name)
        elif event.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            attributes = event.signal_external_workflow_execution_initiated_event_attributes
            events.append(attributes.signal_name)
        elif event.event_type in named:
            events.append(named[event.event_type])
    return events


def _after(events: list[str], signal: str) -> list[str]:
    return events[events.index(signal) + 1 :]
