"""Worker memory with many executions waiting on a signal.

    python -m bench.memory [--executions 1000] [--checkpoints 0,250,500,750,1000]

One headless dev server as `wfe dev` starts it (SQLite file, WAL, lifted poll limits) and the
real worker as a subprocess (``python -m worker``, configured by environment only, like
production) on its own task queue. This process starts executions directly with a Temporal
client, as the API does (``tests/conftest.py``'s ``start_definition``), of a definition of
two steps: a `set`, then a `wait_for_signal` on ``approval`` without timeout, which no one
ever sends. Every execution therefore stays parked on the worker (in its workflow cache,
Temporal's default of 1000 workflows, while it fits) with its interpreter state.

At each checkpoint (a count of started executions, 0 first) the executions started so far are
all confirmed waiting: each one's ``status`` query must answer ``current_step == "approval"``
(asked 32 at a time, until it does). Then the worker is left alone for a couple of seconds and
its resident set is read (VmRSS of ``/proc/<pid>/status``). Reported: RSS in MB per checkpoint,
``per_execution_kb`` (the slope between the first and the last checkpoint, and between each
pair of neighbouring checkpoints: the first pair also pays one-time costs), the highest
reading, the worker's peak (VmHWM) and the seconds each batch took to start and reach its
wait. At the end the executions are terminated and the worker is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from activities.runtime.settings import Settings, load_settings
from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import DevServer
from bench.starts import Child, child_env, say, terminate_all
from workflows.definition import WorkflowDefinition
from workflows.messages import (
    SA_DEFINITION_ID,
    STATUS_QUERY,
    WORKFLOW_TYPE,
    ExecutionState,
)
from workflows.shared import ExecutionInput
from workflows.validation import load_definition

READY_LINE = "worker polling task queue"  # worker.py logs it once it polls
WORKFLOW_ID = "bench-memory"
WAIT_STEP = "approval"
SETTLE_SECONDS = 2.0
CONCURRENCY = 32  # starts and status queries in flight
WAIT_TIMEOUT = 600.0  # seconds for one batch to be all waiting


def definition() -> WorkflowDefinition:
    """A `set`, then a `wait_for_signal` that never ends (no timeout), validated as the API
    validates a saved document."""
    return load_definition(
        {
            "id": WORKFLOW_ID,
            "name": "Waiting for approval",
            "inputs": {"type": "object", "properties": {"n": {"type": "integer"}}},
            "steps": [
                {"id": "prepare", "type": "set", "values": {"label": "run {n}"}},
                {"id": WAIT_STEP, "type": "wait_for_signal", "signal": "approval"},
            ],
        }
    )


async def start_one(
    client: Client, settings: Settings, workflow: WorkflowDefinition, n: int
) -> WorkflowHandle[Any, Any]:
    """Start an execution the way the API does, minus HTTP (tests/conftest.start_definition)."""
    return await client.start_workflow(
        WORKFLOW_TYPE,
        ExecutionInput(definition=workflow, input_vars={"n": n}, definition_version=1),
        id=str(uuid.uuid4()),
        task_queue=settings.temporal_task_queue,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_DEFINITION_ID, workflow.key),
            ]
        ),
        static_summary=f"{workflow.title} (bench)",
    )


async def until_waiting(handle: WorkflowHandle[Any, Any], deadline: float) -> None:
    """Ask the status query until the execution reports the wait step as its current one."""
    while True:
        try:
            state = await handle.query(STATUS_QUERY, result_type=ExecutionState)
            if state.status == "running" and state.current_step == WAIT_STEP:
                return
            if state.status != "running":
                raise RuntimeError(f"execution {handle.id} is {state.status}: {state.error}")
        except (WorkflowQueryFailedError, RPCError):
            pass  # no workflow task has completed yet, or the worker is busy: ask again
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {handle.id} not waiting after {WAIT_TIMEOUT} s")
        await asyncio.sleep(0.2)


async def start_waiting(
    client: Client, settings: Settings, workflow: WorkflowDefinition, numbers: range
) -> list[str]:
    """Start one execution per ``n`` and return once every one of them is waiting."""
    gate = asyncio.Semaphore(CONCURRENCY)
    deadline = time.monotonic() + WAIT_TIMEOUT

    async def one(n: int) -> WorkflowHandle[Any, Any]:
        async with gate:
            return await start_one(client, settings, workflow, n)

    handles = await asyncio.gather(*(one(n) for n in numbers))

    async def waiting(handle: WorkflowHandle[Any, Any]) -> None:
        async with gate:
            await until_waiting(handle, deadline)

    await asyncio.gather(*(waiting(h) for h in handles))
    return [h.id for h in handles]


def proc_status_mb(pid: int, field: str) -> float:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM, ...) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def parse_checkpoints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def check_checkpoints(executions: int, checkpoints: tuple[int, ...]) -> tuple[int, ...]:
    """Ascending, within 0..executions, ending with ``executions`` (added if missing)."""
    points = tuple(sorted(set(checkpoints)))
    if not points or points[0] < 0 or points[-1] > executions:
        raise ValueError(f"checkpoints must lie within 0..{executions}: {checkpoints}")
    if points[-1] != executions:
        points += (executions,)
    if len(points) < 2:
        raise ValueError("need at least two checkpoints for a slope")
    return points


async def measure_waiting_memory(
    server_address: str,
    tmp_dir: Path,
    *,
    executions: int = 1000,
    checkpoints: tuple[int, ...] = (0, 250, 500, 750, 1000),
) -> dict[str, Any]:
    """Worker RSS against the number of waiting executions (see the module docstring)."""
    points = check_checkpoints(executions, checkpoints)
    settings = load_settings(
        temporal_address=server_address,
        temporal_task_queue=f"bench-memory-{secrets.token_hex(4)}",
        workflow_definitions_dir=tmp_dir / "definitions",
        workflow_log_dir=tmp_dir / "logs",
        payload_store_dir=tmp_dir / "payloads",
    )
    client = await connect_when_ready(settings)
    workflow = definition()
    started: list[str] = []
    rss_mb: dict[int, float] = {}
    seconds: dict[int, float] = {}
    t_begin = time.perf_counter()
    worker = Child(
        "worker", [sys.executable, "-m", "worker"], child_env(settings), tmp_dir / "worker.out"
    )
    try:
        await worker.wait_for_line(READY_LINE)
        say(f"worker ready (pid {worker.pid}), task queue {settings.temporal_task_queue}")
        for count in points:
            t0 = time.perf_counter()
            started += await start_waiting(client, settings, workflow, range(len(started), count))
            seconds[count] = time.perf_counter() - t0
            await asyncio.sleep(SETTLE_SECONDS)
            if not worker.alive():
                raise RuntimeError(f"the worker exited:\n{worker.tail()}")
            rss_mb[count] = proc_status_mb(worker.pid, "VmRSS")
            say(
                f"{count} waiting ({seconds[count]:.1f} s for this batch): "
                f"worker RSS {rss_mb[count]:.1f} MB"
            )
        hwm_mb = proc_status_mb(worker.pid, "VmHWM")
        elapsed = time.perf_counter() - t_begin
    finally:
        if started:
            say(f"terminating {len(started)} executions")
        not_terminated = await terminate_all(client, started, CONCURRENCY)
        worker.stop()
    first, last = points[0], points[-1]
    return {
        "config": {
            "executions": executions,
            "checkpoints": list(points),
            "settle_seconds": SETTLE_SECONDS,
            "task_queue": settings.temporal_task_queue,
        },
        "rss_mb": rss_mb,
        "per_execution_kb": (rss_mb[last] - rss_mb[first]) * 1024 / (last - first),
        # The same slope between neighbouring checkpoints: the first one also holds one-time
        # costs (the first workflow run, caches, the activity thread pool).
        "per_execution_kb_segments": {
            f"{a}-{b}": (rss_mb[b] - rss_mb[a]) * 1024 / (b - a)
            for a, b in itertools.pairwise(points)
        },
        "max_rss_mb": max(rss_mb.values()),
        "hwm_mb": hwm_mb,
        "seconds": seconds,
        "elapsed_seconds": elapsed,
        "not_terminated": not_terminated,
    }


def print_memory(result: dict[str, Any]) -> None:
    print(f"\nworker RSS with executions waiting on a signal ({result['elapsed_seconds']:.1f} s)")
    print(f"{'waiting':>8}{'RSS MB':>9}{'batch s':>9}")
    for count, mb in result["rss_mb"].items():
        print(f"{count:>8}{mb:>9.1f}{result['seconds'][count]:>9.1f}")
    segments = ", ".join(f"{k}: {v:.1f}" for k, v in result["per_execution_kb_segments"].items())
    print(
        f"per execution {result['per_execution_kb']:.1f} kB ({segments}), max RSS "
        f"{result['max_rss_mb']:.1f} MB (peak VmHWM {result['hwm_mb']:.1f} MB)"
    )
    if result["not_terminated"]:
        print(f"{result['not_terminated']} executions could not be terminated")


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        tmp_dir = Path(tmp)
        with (tmp_dir / "temporal.log").open("ab") as log:
            server = DevServer(db_file=tmp_dir / "temporal.db", headless=True, log=log)
            async with server.running():
                return await measure_waiting_memory(
                    server.address,
                    tmp_dir,
                    executions=args.executions,
                    checkpoints=args.checkpoints,
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument(
        "--checkpoints",
        type=parse_checkpoints,
        default=None,
        help="comma-separated counts of waiting executions at which RSS is read "
        "(default: 0 and every quarter of --executions)",
    )
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = parser.parse_args(argv)
    if args.checkpoints is None:
        args.checkpoints = tuple(args.executions * i // 4 for i in range(5))
    result = asyncio.run(_main(args))
    print_memory(result)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
