"""Streamed AI answers: how late a delta reaches an SSE client, what streaming adds to an AI
step, and what Temporal's own workflow streams would cost instead (docs/streaming.md).

    python -m bench.streaming [--rounds 6] [--chunks 200] [--chunk-ms 10]

One headless dev server (as `wfe dev` starts it), one fake OpenAI-compatible provider on
loopback that streams ``--chunks`` chunks ``--chunk-ms`` apart, each chunk's text carrying the
time it was sent (``<i@t>``), or answers the same text as plain JSON after the same time.

1. **engine**: the real worker (``worker.engine_worker``) and the real API in this process;
   an SSE client reads ``GET /api/executions/{id}/events`` while an ``ai`` step streams. For
   every chunk: the time it reached the client minus the time the provider sent it.
2. **overhead**: the AI step's wall time (its activity, scheduled to completed, from history)
   streamed with a client reading, against the same answer as plain JSON after the same delay,
   runs alternating.
3. **workflow_streams**: ``temporalio.contrib.workflow_streams`` with the same chunks
   published from an activity (batches every 100 ms: its default of 2 s is too slow for the
   goal) and one subscriber: per-chunk latency and the history events the stream adds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamClient
from temporalio.worker import Worker

from activities.runtime.settings import Settings, load_settings
from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import DevServer, free_port
from worker import engine_worker

MARK = re.compile(r"<(\d+)@([\d.]+)>")
BENCH_KEY = "bench-admin-key-0123456789"


class FakeStreamingProvider:
    """``POST /v1/chat/completions``: ``chunks`` marked chunks ``delay`` apart (streamed), or
    the same text as JSON once they would all have been sent."""

    def __init__(self, chunks: int, delay: float) -> None:
        self.chunks, self.delay, self.stream = chunks, delay, True
        bench = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                usage = {"prompt_tokens": 10, "completion_tokens": bench.chunks}
                if not (bench.stream and body.get("stream")):
                    time.sleep(bench.chunks * bench.delay)
                    text = "".join(f"<{i}@{time.time():.6f}>" for i in range(bench.chunks))
                    message = {"role": "assistant", "content": text}
                    answer = {"model": "m", "usage": usage, "choices": [
                        {"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip
                    data = json.dumps(answer).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.close_connection = True
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                begun = time.monotonic()
                for i in range(bench.chunks):
                    # On a fixed schedule: the stream takes as long as the JSON answer's wait.
                    time.sleep(max(0.0, begun + (i + 1) * bench.delay - time.monotonic()))
                    delta = {"content": f"<{i}@{time.time():.6f}>"}
                    chunk = {"model": "m", "choices": [{"index": 0, "delta": delta}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                end = {"model": "m", "usage": usage,
                       "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def latencies(text: str, received: float) -> dict[int, float]:
    return {int(i): received - float(sent) for i, sent in MARK.findall(text)}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextlib.asynccontextmanager
async def serve_api(settings: Settings, client: Client) -> AsyncIterator[str]:
    import uvicorn

    from api.server.main import create_app

    port = free_port()
    app = create_app(settings.model_copy(update={"api_port": port}), client=client)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def read_deltas(http: httpx.AsyncClient, execution_id: str) -> dict[int, float]:
    """Per chunk, how late it reached this SSE client (seconds)."""
    late: dict[int, float] = {}
    async with http.stream("GET", f"/api/executions/{execution_id}/events") as response:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "delta":
                data = json.loads(line[5:])
                for index, seconds in latencies(data["text"], time.time()).items():
                    late.setdefault(index, seconds)
            elif line.startswith("data:") and event == "end":
                return late
    return late


async def step_seconds(client: Client, execution_id: str) -> float:
    """The AI activity's time, scheduled to completed, from the run's history."""
    events = [e async for e in client.get_workflow_handle(execution_id).fetch_history_events()]
    scheduled = next(e for e in events if e.HasField("activity_task_scheduled_event_attributes"))
    done = next(e for e in events if e.HasField("activity_task_completed_event_attributes"))
    return done.event_time.ToDatetime().timestamp() - scheduled.event_time.ToDatetime().timestamp()


async def measure_engine(
    address: str, tmp: Path, provider: FakeStreamingProvider, rounds: int
) -> dict[str, Any]:
    providers = {"fake": {"base_url": provider.base_url}}
    keys = [{"key": BENCH_KEY, "name": "bench", "role": "admin", "workflows": "*"}]
    settings = load_settings(
        temporal_address=address, temporal_task_queue="bench-streaming",
        workflow_log_dir=tmp / "logs", workflow_definitions_dir=tmp / "definitions",
        payload_store_dir=tmp / "payloads", ai_providers=json.dumps(providers),
        api_keys=json.dumps(keys), openrouter_api_key="unused",
    )  # fmt: skip
    client = await connect_when_ready(settings)
    step = {"id": "ask", "type": "ai", "model": "fake:m", "prompt": "go", "output": "ask"}
    document = {"id": "streamed", "steps": [step]}
    late: list[float] = []
    walls: dict[str, list[float]] = {"stream": [], "json": []}
    headers = {"Authorization": f"Bearer {BENCH_KEY}"}
    async with (
        engine_worker(client, settings) as configured,
        configured,
        serve_api(settings, client) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http,
    ):
        assert (await http.put("/api/workflows/streamed", json=document)).status_code < 300
        for round_ in range(rounds + 1):  # the first round warms up
            for mode in ("stream", "json") if round_ % 2 else ("json", "stream"):
                provider.stream = mode == "stream"
                started = await http.post("/api/workflows/run", json={"workflow_id": "streamed"})
                execution_id = started.json()["execution_id"]
                seen = await read_deltas(http, execution_id)
                if round_ and mode == "stream":
                    late += list(seen.values())
                if round_:
                    walls[mode].append(await step_seconds(client, execution_id))
    stream, plain = statistics.median(walls["stream"]), statistics.median(walls["json"])
    return {
        "deltas": len(late),
        "delta_p50_s": percentile(late, 0.50),
        "delta_p99_s": percentile(late, 0.99),
        "delta_max_s": max(late),
        "step_stream_s": stream,
        "step_json_s": plain,
        "overhead": stream / plain - 1,
    }


@activity.defn(name="bench_publish")
async def bench_publish(spec: dict[str, Any]) -> None:
    """The provider's chunks, published to the run's workflow stream as they arrive."""
    batch = timedelta(milliseconds=100)
    async with WorkflowStreamClient.from_within_activity(batch_interval=batch) as stream:
        topic = stream.topic("delta")
        for i in range(spec["chunks"]):
            await asyncio.sleep(spec["delay"])
            topic.publish(f"<{i}@{time.time():.6f}>")


@workflow.defn(name="BenchStreamed", sandboxed=False)
class BenchStreamed:
    @workflow.init
    def __init__(self, spec: dict[str, Any]) -> None:
        self.stream = WorkflowStream()

    @workflow.run
    async def run(self, spec: dict[str, Any]) -> None:
        await workflow.execute_activity(
            bench_publish, spec, start_to_close_timeout=timedelta(minutes=5)
        )
        self.stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)


async def measure_workflow_streams(address: str, chunks: int, delay: float) -> dict[str, Any]:
    client = await Client.connect(address)
    queue = f"bench-ws-{uuid.uuid4()}"
    late: dict[int, float] = {}
    async with Worker(client, task_queue=queue, workflows=[BenchStreamed],
                      activities=[bench_publish]):  # fmt: skip
        workflow_id = f"ws-{uuid.uuid4()}"
        spec = {"chunks": chunks, "delay": delay}
        handle = await client.start_workflow(
            BenchStreamed.run, spec, id=workflow_id, task_queue=queue
        )
        reader = WorkflowStreamClient.create(client, workflow_id)
        async for item in reader.subscribe(["delta"], poll_cooldown=timedelta(milliseconds=50)):
            for index, seconds in latencies(str(item.data), time.time()).items():
                late.setdefault(index, seconds)
            if len(late) >= chunks:
                break
        await handle.result()
        events = [e async for e in handle.fetch_history_events()]
    signals = sum(e.HasField("workflow_execution_signaled_event_attributes") for e in events)
    updates = sum(e.HasField("workflow_execution_update_completed_event_attributes")
                  for e in events)  # fmt: skip
    values = list(late.values())
    return {
        "history_events": len(events),
        "publish_signals": signals,
        "poll_updates": updates,
        "events_per_batch": (len(events) - 11) / max(signals, 1),
        "delta_p50_s": percentile(values, 0.50),
        "delta_p99_s": percentile(values, 0.99),
    }


def report(engine: dict[str, Any], streams: dict[str, Any], chunks: int, delay: float) -> None:
    print(f"fake provider: {chunks} chunks, {delay * 1000:.0f} ms apart")
    print(
        "engine (heartbeat details, API polls describe every 50 ms while streaming): "
        f"{engine['deltas']} chunks timed, latency to the SSE client p50 "
        f"{engine['delta_p50_s'] * 1000:.0f} ms, "
        f"p99 {engine['delta_p99_s'] * 1000:.0f} ms (goal <= 500), max "
        f"{engine['delta_max_s'] * 1000:.0f} ms; history events added: 0"
    )
    print(
        f"AI step wall time: streamed {engine['step_stream_s']:.3f} s, plain JSON "
        f"{engine['step_json_s']:.3f} s, overhead {engine['overhead'] * 100:+.1f}% (goal <= 5%)"
    )
    print(
        f"workflow_streams (100 ms batches, one subscriber): p50 "
        f"{streams['delta_p50_s'] * 1000:.0f} ms, p99 {streams['delta_p99_s'] * 1000:.0f} ms; "
        f"{streams['history_events']} history events for one answer "
        f"({streams['publish_signals']} publish signals, {streams['poll_updates']} poll "
        f"updates): {streams['events_per_batch']:.1f} events per batch"
    )


async def _main(args: argparse.Namespace) -> None:
    delay = args.chunk_ms / 1000
    with tempfile.TemporaryDirectory(prefix="wfe-bench-") as tmp:
        tmp_dir = Path(tmp)
        with (tmp_dir / "temporal.log").open("wb") as log:
            server = DevServer(db_file=tmp_dir / "temporal.db", headless=True, log=log)
            async with server.running():
                provider = FakeStreamingProvider(args.chunks, delay)
                try:
                    engine = await measure_engine(server.address, tmp_dir, provider, args.rounds)
                finally:
                    provider.stop()
                streams = await measure_workflow_streams(server.address, args.chunks, delay)
    report(engine, streams, args.chunks, delay)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="streamed AI answers: latency and overhead")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--chunk-ms", type=float, default=10.0)
    asyncio.run(_main(parser.parse_args()))
