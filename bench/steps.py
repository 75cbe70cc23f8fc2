"""Per-step cost of the engine against a hand-written Temporal workflow (`make bench`).

    python -m bench.steps [--runs 10] [--warmup 2] [--steps 20] [--concurrency 8]

One dev server (in-memory, headless), one loopback HTTP target, one client, four variants on
their own task queues, so that each worker can register its own ``send_http_request``:

- ``engine``: WorkflowExecutor interpreting a definition of N `http` steps (the real worker).
- ``engine-nullio``: the same, but the log-write local activity skips its file I/O.
- ``baseline``: bench/baseline.py, the same N requests through the same activity, nothing else.
- ``baseline-la``: the baseline plus a no-op local activity where the engine writes its log.

Runs alternate between the variants (the starting variant rotates every round), so drift in
the machine's state hits all of them alike. The differences between the four split the
engine's extra cost per step into the log file I/O, the local-activity mechanism and the rest
(the interpreter itself). See bench/README.md for the results on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from activities.logs import WorkflowLogger
from api.dev import DevServer, free_port
from bench.baseline import (
    BASELINE_WORKFLOW,
    BaselineInput,
    BaselineStep,
    BaselineWorkflow,
    mark_step,
)
from bench.history import event_counts, server_duration_ms, step_timings
from bench.report import build_report, print_report, write_json
from worker import engine_worker, http_step_activities
from workflows.definition import WorkflowDefinition
from workflows.settings import Settings, load_settings
from workflows.shared import SA_DEFINITION_ID, SA_STATUS, WORKFLOW_TYPE, ExecutionInput, LogWrite
from workflows.temporal_client import connect_when_ready
from workflows.validation import load_definition

ENGINE = "engine"
ENGINE_NULLIO = "engine-nullio"
BASELINE = "baseline"
BASELINE_LA = "baseline-la"
VARIANTS = (ENGINE, ENGINE_NULLIO, BASELINE, BASELINE_LA)

RESULTS_DIR = Path(__file__).parent / "results"

Starter = Callable[[Client, str, int], Awaitable[WorkflowHandle[Any, Any]]]


@dataclass
class Run:
    """One execution: client wall time plus what its history says."""

    variant: str
    steps: int
    wall_ms: float
    server_ms: float
    events: dict[str, int]
    timings: list[dict[str, float]] = field(default_factory=list)

    @property
    def ms_per_step(self) -> float:
        return self.wall_ms / self.steps


class NullIOLogger(WorkflowLogger):
    """Keeps the log-write local activity (and its thread hop) but writes no file.

    The difference between ``engine`` and ``engine-nullio`` is then the cost of the log
    file itself: JSON encoding, a temp file, fsync and rename on every step.
    """

    def write(self, entry: LogWrite) -> dict[str, Any]:
        return {}


# -- the workload ----------------------------------------------------------------------------


def bench_steps(target_url: str, count: int) -> list[BaselineStep]:
    """Alternating POST (with a small JSON body) and GET requests to the loopback target."""
    steps = []
    for i in range(1, count + 1):
        post = i % 2 == 1
        steps.append(
            BaselineStep(
                id=f"s{i}",
                method="POST" if post else "GET",
                url=f"{target_url}/step/{i}",
                json_body={"i": i} if post else None,
            )
        )
    return steps


def engine_definition(steps: list[BaselineStep]) -> WorkflowDefinition:
    """The same requests as an engine definition document, validated like the API does."""
    document: dict[str, Any] = {"id": f"bench-{len(steps)}", "name": "bench", "steps": []}
    for step in steps:
        entry: dict[str, Any] = {
            "id": step.id,
            "type": "http",
            "method": step.method,
            "url": step.url,
        }
        if step.json_body is not None:
            entry["json"] = step.json_body
        document["steps"].append(entry)
    return load_definition(document)


def engine_starter(task_queue: str, target_url: str) -> Starter:
    definitions: dict[int, WorkflowDefinition] = {}

    async def start(client: Client, workflow_id: str, count: int) -> WorkflowHandle[Any, Any]:
        if count not in definitions:
            definitions[count] = engine_definition(bench_steps(target_url, count))
        definition = definitions[count]
        # As the API (and tests/conftest.start_definition) start an execution.
        return await client.start_workflow(
            WORKFLOW_TYPE,
            ExecutionInput(definition=definition, input_vars={}, definition_version=1),
            id=workflow_id,
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_DEFINITION_ID, definition.key),
                    SearchAttributePair(SA_STATUS, "running"),
                ]
            ),
            static_summary=f"{definition.title} (bench)",
        )

    return start


def baseline_starter(task_queue: str, target_url: str, local_marker: bool) -> Starter:
    async def start(client: Client, workflow_id: str, count: int) -> WorkflowHandle[Any, Any]:
        workload = BaselineInput(steps=bench_steps(target_url, count), local_marker=local_marker)
        return await client.start_workflow(
            BASELINE_WORKFLOW, workload, id=workflow_id, task_queue=task_queue
        )

    return start


async def run_once(client: Client, variant: str, start: Starter, count: int) -> Run:
    """Start one execution and wait for its result; the clock covers start to result."""
    began = time.perf_counter()
    handle = await start(client, f"bench-{variant}-{uuid.uuid4()}", count)
    await handle.result()
    wall_ms = (time.perf_counter() - began) * 1000
    history = await handle.fetch_history()
    return Run(
        variant=variant,
        steps=count,
        wall_ms=wall_ms,
        server_ms=server_duration_ms(history),
        events=event_counts(history),
        timings=[t.as_dict() for t in step_timings(history)],
    )


# -- the schedule ----------------------------------------------------------------------------


async def sequential(
    client: Client, starters: dict[str, Starter], rounds: int, count: int, idle: float = 0.0
) -> list[Run]:
    """``rounds`` runs of every variant, one at a time, rotating who goes first.

    With ``idle`` > 0 the worker stays quiet that long before each run, which keeps every run
    clear of the delayed-ACK stall that sets in after ~20 back-to-back steps.
    """
    names = list(starters)
    runs: list[Run] = []
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            if idle:
                await asyncio.sleep(idle)
            runs.append(await run_once(client, name, starters[name], count))
    return runs


async def concurrent(
    client: Client, starters: dict[str, Starter], width: int, count: int, rounds: int
) -> dict[str, dict[str, float]]:
    """``width`` executions of one variant at once: throughput, not latency.

    Repeated ``rounds`` times, rotating the variants like :func:`sequential`; the median
    round counts, since one burst of a few seconds is easily disturbed.
    """
    names = list(starters)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            began = time.perf_counter()
            await asyncio.gather(
                *(run_once(client, name, starters[name], count) for _ in range(width))
            )
            samples[name].append(time.perf_counter() - began)
    results: dict[str, dict[str, float]] = {}
    for name, walls in samples.items():
        wall = statistics.median(walls)
        results[name] = {
            "executions": width,
            "rounds": rounds,
            "wall_s": wall,
            "steps_per_s": width * count / wall,
            "ms_per_step_per_execution": wall * 1000 / count,
        }
    return results


async def burst_probe(
    client: Client, starters: dict[str, Starter], count: int, idle: float
) -> dict[str, list[dict[str, float]]]:
    """After ``idle`` seconds of quiet, one long run per variant: does step ~20 get slower?"""
    profiles: dict[str, list[dict[str, float]]] = {}
    for name in (ENGINE, BASELINE):
        await asyncio.sleep(idle)
        run = await run_once(client, name, starters[name], count)
        profiles[name] = run.timings
    return profiles


# -- the infrastructure ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def http_target() -> AsyncIterator[str]:
    """The loopback target in its own process; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.target", "--port", str(port)])
    try:
        await _wait_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


async def _wait_listening(port: int, process: subprocess.Popen[bytes], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bench target exited with code {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"bench target not listening on port {port}")


@contextlib.asynccontextmanager
async def dev_server(log_path: Path) -> AsyncIterator[DevServer]:
    """One headless dev server with an in-memory store (no --db-filename)."""
    with log_path.open("wb") as log:
        async with DevServer(headless=True, log=log).running() as server:
            yield server


@contextlib.asynccontextmanager
async def baseline_worker(
    client: Client, settings: Settings, task_queue: str
) -> AsyncIterator[Worker]:
    """The baseline's worker: its own HTTPStepActivities, configured like the engine's."""
    async with http_step_activities(settings) as activities:
        yield Worker(
            client,
            task_queue=task_queue,
            workflows=[BaselineWorkflow],
            activities=[activities.send_http_request, mark_step],
        )


@contextlib.asynccontextmanager
async def running_variants(
    client: Client, settings: Settings, target_url: str, log_dir: Path
) -> AsyncIterator[dict[str, Starter]]:
    """Three workers polling (engine, engine without log I/O, baseline); yields the starters."""
    nullio = NullIOLogger(log_dir / "nullio")
    async with (
        engine_worker(client, settings, task_queue="bench-engine") as engine,
        engine_worker(client, settings, "bench-engine-nullio", logs=nullio) as engine_nullio,
        baseline_worker(client, settings, "bench-baseline") as baseline,
        engine,
        engine_nullio,
        baseline,
    ):
        yield {
            ENGINE: engine_starter("bench-engine", target_url),
            ENGINE_NULLIO: engine_starter("bench-engine-nullio", target_url),
            BASELINE: baseline_starter("bench-baseline", target_url, local_marker=False),
            BASELINE_LA: baseline_starter("bench-baseline", target_url, local_marker=True),
        }


# -- main ------------------------------------------------------------------------------------


def say(what: str) -> None:
    print(f"{what} ...", flush=True)


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wfe-bench-") as tmp:
        tmp_dir = Path(tmp)
        async with dev_server(tmp_dir / "temporal.log") as server, http_target() as target:
            settings = load_settings(
                temporal_address=server.address,
                temporal_task_queue="bench-engine",
                workflow_log_dir=tmp_dir / "logs",
                workflow_definitions_dir=tmp_dir / "definitions",
                http_allowed_hosts="127.0.0.1",  # the loopback target, through the SSRF guard
            )
            client = await connect_when_ready(settings)
            async with running_variants(client, settings, target, tmp_dir) as starters:
                return await measure(client, starters, args)


async def measure(
    client: Client, starters: dict[str, Starter], args: argparse.Namespace
) -> dict[str, Any]:
    """Warm up, then the sequential regimes, the concurrency rounds and the burst probe."""
    say(f"warming up ({args.warmup} runs each)")
    await sequential(client, starters, args.warmup, args.steps)
    regimes: dict[str, list[Run]] = {}
    if args.runs:
        say(f"back to back ({args.runs} runs each, alternating)")
        regimes["back_to_back"] = await sequential(client, starters, args.runs, args.steps)
    if args.idle_runs:
        say(f"{args.idle:g} s idle before each run ({args.idle_runs} runs each, alternating)")
        regimes["after_idle"] = await sequential(
            client, starters, args.idle_runs, args.steps, args.idle
        )
    throughput: dict[str, dict[str, float]] = {}
    if args.concurrency:
        say(f"{args.concurrency} at once ({args.concurrency_rounds} rounds each)")
        throughput = await concurrent(
            client, starters, args.concurrency, args.steps, args.concurrency_rounds
        )
    probes: dict[str, list[dict[str, float]]] = {}
    if args.probe_steps:
        say(f"burst probe ({args.probe_steps} steps after {args.idle:g} s idle)")
        probes = await burst_probe(client, starters, args.probe_steps, args.idle)
    return build_report(vars(args), regimes, throughput, probes)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="engine vs hand-written workflow, ms per step")
    parser.add_argument("--runs", type=int, default=10, help="measured runs per variant")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs per variant")
    parser.add_argument("--steps", type=int, default=20, help="http steps per execution")
    parser.add_argument(
        "--concurrency", type=int, default=0, help="also run K executions at once (0: skip)"
    )
    parser.add_argument(
        "--concurrency-rounds", type=int, default=3, help="rounds of the concurrency test"
    )
    parser.add_argument(
        "--probe-steps", type=int, default=60, help="steps of the burst probe run (0: skip)"
    )
    parser.add_argument(
        "--idle-runs", type=int, default=8, help="measured runs per variant after idle (0: skip)"
    )
    parser.add_argument(
        "--idle", type=float, default=4.0, help="seconds of quiet before idle and probe runs"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = asyncio.run(bench(args))
    print_report(report)
    path = write_json(report, args.out)
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
