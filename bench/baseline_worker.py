"""The hand-written workflow's worker as a process of its own (for bench/load.py).

    python -m bench.baseline_worker --address 127.0.0.1:7233 --task-queue q [--sandboxed]

A process per worker lets the load benchmark read each side's CPU time from /proc, as it does
for the engine's real worker (``python -m worker``). The worker is what a careful engineer
deploys: the SDK's defaults, one shared httpx client, the plain activity of bench/baseline.py.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench.baseline import (
    BaselineWorkflow,
    FanOutChildrenWorkflow,
    FanOutWorkflow,
    PlainHTTP,
)
from worker import HTTP_LIMITS, HTTP_TIMEOUT


async def serve(address: str, task_queue: str, sandboxed: bool) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS) as shared:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[BaselineWorkflow, FanOutWorkflow, FanOutChildrenWorkflow],
            workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
            activities=[PlainHTTP(shared).send_request],
        )
        async with worker:
            await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--sandboxed", action="store_true")
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.address, arguments.task_queue, arguments.sandboxed))
