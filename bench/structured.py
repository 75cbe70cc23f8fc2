"""Parallel and foreach wall time: the engine against a hand-written Temporal workflow.

A `parallel` step of B branches (one HTTP call each) and a `foreach` over M items
(one HTTP call each, `concurrency` C), against ``BenchFanOut`` (bench/baseline.py): the same
calls as activities, at most C at once, written by hand. Wall time is read from each run's
history (first to last event), so client and start-up costs are left out; runs alternate
between the two, and the ratio is the median of per-round ratios.

    python -m bench.structured                       # parallel 10, foreach 100 (concurrency 10)
    python -m bench.structured --branches 20 --items 500 --concurrency 50 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

from temporalio.client import Client

from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import DevServer
from api.server.executions import execution_limits
from bench.baseline import FAN_OUT_WORKFLOW, FanOutInput
from bench.history import server_duration_ms
from bench.steps import baseline_worker, bench_settings, http_target
from worker import engine_worker
from workflows.messages import WORKFLOW_TYPE
from workflows.shared import ExecutionInput
from workflows.validation import load_definition


def parallel_document(target: str, branches: int) -> dict[str, Any]:
    return {
        "id": "bench-parallel",
        "steps": [
            {
                "id": "fan",
                "type": "parallel",
                "branches": [
                    {"id": f"b{i}", "steps": [
                        {"id": f"get{i}", "type": "http", "url": f"{target}/item/{i}"}
                    ]}
                    for i in range(branches)
                ],
            }
        ],
    }  # fmt: skip


def foreach_document(target: str, concurrency: int) -> dict[str, Any]:
    return {
        "id": "bench-foreach",
        "inputs": {"type": "object", "properties": {"items": {"type": "array"}}},
        "steps": [
            {"id": "each", "type": "foreach", "items": "{items}", "concurrency": concurrency,
             "steps": [{"id": "get", "type": "http", "url": f"{target}/item/{{item}}"}]},
        ],
    }  # fmt: skip


async def wall_ms(client: Client, workflow: str, argument: Any, task_queue: str) -> float:
    handle = await client.start_workflow(
        workflow, argument, id=f"bench-{uuid.uuid4()}", task_queue=task_queue
    )
    await handle.result()
    return server_duration_ms(await handle.fetch_history())


async def measure_structured(
    server_address: str,
    tmp_dir: Path,
    branches: int = 10,
    items: int = 100,
    concurrency: int = 10,
    rounds: int = 3,
) -> dict[str, Any]:
    async with http_target() as target:
        settings = bench_settings(server_address, tmp_dir, "bench-structured")
        client = await connect_when_ready(settings)

        def urls(count: int) -> list[str]:
            return [f"{target}/item/{i}" for i in range(count)]

        shapes = {
            f"parallel, {branches} branches": (
                parallel_document(target, branches), {}, urls(branches), branches,
            ),
            f"foreach, {items} items, concurrency {concurrency}": (
                foreach_document(target, concurrency), {"items": list(range(items))},
                urls(items), concurrency,
            ),
        }  # fmt: skip
        results: dict[str, Any] = {}
        async with (
            engine_worker(client, settings, task_queue="bench-structured") as engine,
            baseline_worker(client, settings, "bench-fan-out", sandboxed=True) as baseline,
            engine,
            baseline,
        ):
            for name, (document, inputs, targets, limit) in shapes.items():
                definition = load_definition(document)
                engine_input = ExecutionInput(
                    definition=definition,
                    input_vars=inputs,
                    definition_version=1,
                    limits=execution_limits(definition, settings),
                )
                baseline_input = FanOutInput(urls=targets, concurrency=limit)
                pairs = []
                for _ in range(rounds + 1):  # the first round warms up
                    engine_ms = await wall_ms(
                        client, WORKFLOW_TYPE, engine_input, "bench-structured"
                    )
                    baseline_ms = await wall_ms(
                        client, FAN_OUT_WORKFLOW, baseline_input, "bench-fan-out"
                    )
                    pairs.append((engine_ms, baseline_ms))
                pairs = pairs[1:]
                results[name] = {
                    "engine_ms": statistics.median(p[0] for p in pairs),
                    "baseline_ms": statistics.median(p[1] for p in pairs),
                    "ratio_paired": statistics.median(p[0] / p[1] for p in pairs),
                    "rounds": rounds,
                }
    return results


def print_structured(results: dict[str, Any]) -> None:
    print(f"{'wall time, ms':<44}{'engine':>10}{'baseline':>10}{'ratio':>8}")
    for name, figures in results.items():
        print(
            f"{name:<44}{figures['engine_ms']:>10.0f}{figures['baseline_ms']:>10.0f}"
            f"{figures['ratio_paired']:>8.3f}"
        )


async def _main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="wfe-bench-") as tmp:
        tmp_dir = Path(tmp)
        with (tmp_dir / "temporal.log").open("wb") as log:
            server = DevServer(db_file=tmp_dir / "temporal.db", headless=True, log=log)
            async with server.running():
                print_structured(
                    await measure_structured(
                        server.address, tmp_dir, args.branches, args.items, args.concurrency,
                        args.rounds,
                    )
                )  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=10)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(_main(parser.parse_args()))
