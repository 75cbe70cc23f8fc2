"""Flow control figures (docs/flow-control.md): concurrency per key, shared AI rate limits,
and what a keyed start adds.

    python -m bench.flow [--runs 1000] [--ai-runs 200] [--latency 100]

One headless dev server as `wfe dev` starts it, one worker in this process (unsandboxed, as
production runs it), runs started the way the API starts them (``start_options``: the same
input, the concurrency claim resolved from the inputs), straight on a Temporal client:

1. ``key``: ``--runs`` runs of a one-step workflow (a `delay` of ``--seconds``, 0.2) with
   ``concurrency: {"limit": 5}``, all started at once. Read from each run's history: when its
   step began (it held its place by then) and when it handed the place back (the release
   signal it sent): the most runs between the two at any instant (must be <= 5); runs started
   vs completed (lost = 0). Throughput (runs/s from the first start to the last completion)
   against the same runs with no key, kept 5 in flight by the client ("5 unconstrained runs
   in a row").
2. ``ai``: ``--ai-runs`` runs of 3 `ai` calls each, all started at once, against a fake
   provider that answers 429 past ``rate`` requests in any window. AI_RATE_LIMITS names the
   same rate. Counted: the provider's 429s (must be 0), runs completed, and the total time
   against the ideal (calls / rate). The window is RATE_LIMIT_WINDOW_SECONDS (60 s in
   production; ``--window`` shortens it so the figure takes minutes, not hours: the rate per
   second stays what it says).
3. ``latency``: ``--latency`` runs one after the other of a one-`set` workflow, with and
   without a concurrency key (no contention): start to result, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from activities.runtime.settings import AIRateLimit, Settings, load_settings
from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import DevServer
from api.server.db import prepare_database
from api.server.db.engine import open_engine, run_blocking
from api.server.db.store import DatabaseDefinitionStore
from api.server.executions import start_options
from api.server.executions.options import execution_limits
from api.server.store import StoredDefinition
from workflows.flow.messages import RELEASE_SIGNAL
from workflows.messages import WORKFLOW_TYPE

Handle = WorkflowHandle[Any, Any]
# Starts in flight at once (1,000 start requests at once time out on a loaded machine; the
# runs are all queued within seconds either way).
STARTS_AT_ONCE = 50


def say(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


def stored(settings: Settings, document: dict[str, Any]) -> StoredDefinition:
    """Saved into the control plane's database as the API saves it, and read back."""

    async def save() -> StoredDefinition:
        engine = open_engine(settings.database)
        try:
            store = DatabaseDefinitionStore(engine)
            await store.save(str(document["id"]), document)
            return await store.get(str(document["id"]))
        finally:
            await engine.dispose()

    prepare_database(settings)
    return run_blocking(save)


async def start(client: Client, settings: Settings, definition: StoredDefinition) -> Handle:
    options = start_options(
        definition, {}, "bench", None, execution_limits(definition.definition, settings)
    )
    return await client.start_workflow(
        WORKFLOW_TYPE,
        options.input,
        id=f"{definition.workflow_id}-{uuid.uuid4()}",
        task_queue=settings.temporal_task_queue,
        search_attributes=options.search_attributes,
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- 1. one key, limit 5 ---------------------------------------------------------------------


async def place_span(handle: Handle) -> tuple[float, float] | None:
    granted = released = None
    async for event in handle.fetch_history_events():
        at = event.event_time.ToDatetime().timestamp()
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_TIMER_STARTED and not released:
            granted = at  # the last timer before the release is the step's (it holds the
            # place then); the first is the run's deadline
        attributes = event.signal_external_workflow_execution_initiated_event_attributes
        if (
            kind == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
            and attributes.signal_name == RELEASE_SIGNAL
        ):
            released = released or at
    return (granted, released) if granted and released else None


def most_at_once(spans: Sequence[tuple[float, float]]) -> int:
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


async def key_limit(
    client: Client, settings: Settings, runs: int, seconds: float = 0.2
) -> dict[str, Any]:
    steps = [{"id": "nap", "type": "delay", "seconds": seconds}]
    keyed = stored(settings, {"id": "bench-key", "concurrency": {"limit": 5}, "steps": steps})
    plain = stored(settings, {"id": "bench-plain", "steps": steps})
    say(f"key: {runs} runs of a {seconds:g} s delay on one key, limit 5")
    began = time.monotonic()
    starting = asyncio.Semaphore(STARTS_AT_ONCE)

    async def queued() -> Handle:
        async with starting:
            return await start(client, settings, keyed)

    handles = await asyncio.gather(*(queued() for _ in range(runs)))
    results = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
    keyed_seconds = time.monotonic() - began
    completed = sum(1 for r in results if not isinstance(r, BaseException))
    spans = [s for s in await asyncio.gather(*(place_span(h) for h in handles)) if s]
    say(f"key: the same {runs} runs, no key, 5 in flight at a time")
    began = time.monotonic()
    pending = iter(range(runs))

    async def lane() -> None:
        for _ in pending:
            await (await start(client, settings, plain)).result()

    await asyncio.gather(*(lane() for _ in range(5)))
    plain_seconds = time.monotonic() - began
    return {
        "runs": runs,
        "step_seconds": seconds,
        "completed": completed,
        "lost": runs - completed,
        "granted_once": len(spans),
        "most_in_flight": most_at_once(spans),
        "keyed_runs_per_s": round(runs / keyed_seconds, 2),
        "plain_5_in_flight_runs_per_s": round(runs / plain_seconds, 2),
        "ratio": round(plain_seconds / keyed_seconds, 3),
    }


# -- 2. AI calls under a shared rate ---------------------------------------------------------


async def ai_rate(
    client: Client, settings: Settings, runs: int, rate: int, window: float
) -> dict[str, Any]:
    from tests.fakes import FakeOpenRouter, Recorded, Reply, openrouter_error

    class Provider(FakeOpenRouter):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[float] = []
            self.refused = 0

        def default_reply(self, record: Recorded) -> Reply:
            with self._lock:
                recent = [at for at in self.seen if at > record.at - window]
                self.seen.append(record.at)
                if len(recent) >= rate:
                    self.refused += 1
                    return Reply(429, openrouter_error(429, "Rate limit exceeded"))
            return super().default_reply(record)

    provider = Provider()
    provider.start()
    limited = settings.model_copy(
        update={
            "openrouter_base_url": provider.base_url,
            "ai_rate_limits": {"bench/*": AIRateLimit(requests_per_minute=rate)},
            "rate_limit_window_seconds": window,
        }
    )
    call = {"type": "ai", "model": "bench/model", "prompt": "hi"}
    steps = [{"id": f"call{i}", **call} for i in range(3)]
    definition = stored(limited, {"id": "bench-ai", "steps": steps})
    say(f"ai: {runs} runs x 3 calls, {rate} requests per {window:g} s")
    try:
        async with _worker(client, limited):
            began = time.monotonic()
            handles = await asyncio.gather(
                *(start(client, limited, definition) for _ in range(runs))
            )
            results = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
            seconds = time.monotonic() - began
    finally:
        provider.stop()
    calls = runs * 3
    ideal = calls / (rate / window)
    return {
        "runs": runs,
        "calls": calls,
        "completed": sum(1 for r in results if not isinstance(r, BaseException)),
        "provider_429s": provider.refused,
        "provider_requests": len(provider.seen),
        "rate": f"{rate} per {window:g} s",
        "seconds": round(seconds, 1),
        "ideal_seconds": round(ideal, 1),
        "ratio_to_ideal": round(seconds / ideal, 3),
    }


# -- 3. what a keyed start adds --------------------------------------------------------------


async def keyed_latency(client: Client, settings: Settings, runs: int) -> dict[str, Any]:
    steps = [{"id": "one", "type": "set", "values": {"x": 1}}]
    keyed = stored(settings, {"id": "bench-lat-key", "concurrency": {"limit": 5}, "steps": steps})
    plain = stored(settings, {"id": "bench-lat-plain", "steps": steps})
    say(f"latency: {runs} runs one after the other, keyed and plain, alternating")
    times: dict[str, list[float]] = {"keyed": [], "plain": []}
    for _ in range(runs):
        for name, definition in (("keyed", keyed), ("plain", plain)):
            began = time.perf_counter()
            await (await start(client, settings, definition)).result()
            times[name].append((time.perf_counter() - began) * 1000)
    figures: dict[str, Any] = {
        name: {"p50_ms": round(statistics.median(v), 1), "p99_ms": round(percentile(v, 0.99), 1)}
        for name, v in times.items()
    }
    figures["added_p50_ms"] = round(figures["keyed"]["p50_ms"] - figures["plain"]["p50_ms"], 1)
    return figures


# -- the run ---------------------------------------------------------------------------------


class _worker:
    def __init__(self, client: Client, settings: Settings) -> None:
        from worker import engine_worker

        self._context = engine_worker(client, settings)
        self._worker: Any = None

    async def __aenter__(self) -> None:
        self._worker = await self._context.__aenter__()
        await self._worker.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        await self._worker.__aexit__(*exc)
        await self._context.__aexit__(*exc)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = DevServer(db_file=root / "temporal.db", headless=True)
        async with server.running():
            settings = load_settings(
                temporal_address=server.address,
                temporal_task_queue=f"bench-flow-{uuid.uuid4()}",
                workflow_definitions_dir=root / "definitions",
                storage_url=f"file://{root / 'storage'}",
                openrouter_api_key="test-openrouter-key",
            )
            client = await connect_when_ready(settings)
            report: dict[str, Any] = {}
            async with _worker(client, settings):
                if args.latency:
                    report["latency"] = await keyed_latency(client, settings, args.latency)
                if args.runs:
                    report["key"] = await key_limit(client, settings, args.runs, args.seconds)
            if args.ai_runs:
                report["ai"] = await ai_rate(client, settings, args.ai_runs, args.rate, args.window)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--ai-runs", type=int, default=200)
    parser.add_argument("--rate", type=int, default=60, help="requests per window")
    parser.add_argument("--window", type=float, default=60.0, help="seconds")
    parser.add_argument("--latency", type=int, default=100)
    parser.add_argument(
        "--seconds", type=float, default=0.2, help="the keyed runs' delay step (run length)"
    )
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
