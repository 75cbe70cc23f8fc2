"""Per-step cost of the engine against a hand-written Temporal workflow.

    python -m bench.steps [--sizes 20,200] [--rounds 6,3]    # this part alone
    python -m bench                                          # everything (`make bench`)

One dev server started as `wfe dev` starts it (SQLite file, WAL, lifted poll limits), one
loopback HTTP target in its own process, one client, and four variants on their own task
queues, each running N sequential `http` steps to the target:

- ``engine``: WorkflowExecutor interpreting a definition of N `http` steps on the real
  worker (``worker.engine_worker``), with the execution log on, started as the API starts it;
- ``engine-nullio``: the same with a logger that writes no file (the log's own I/O cost);
- ``baseline``: bench/baseline.py, a hand-written workflow and HTTP activity on one shared
  httpx client, on a worker with the SDK's defaults (the workflow sandbox on): what a careful
  engineer writes instead;
- ``baseline-unsandboxed``: the same workflow on a worker without the sandbox, as the engine's
  worker runs (so engine - this is the engine's own cost, like for like);
- ``baseline-engine-activity``: that unsandboxed workflow calling the engine's own
  ``send_http_request`` (the cost of the engine's HTTP activity apart from the rest).

Runs alternate between the variants (the one going first rotates every round), so drift in
the machine's state hits all alike. ms/step is read from each run's history (first to last
event / N), so client and start-up costs are left out; the phases of each step come from the
event timestamps (bench/history.py).
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

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.logs import WorkflowLogger
from activities.runtime.settings import Settings, load_settings
from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import DevServer, free_port
from api.server.executions import execution_limits
from bench.baseline import (
    BASELINE_WORKFLOW,
    BaselineInput,
    BaselineStep,
    BaselineWorkflow,
    FanOutWorkflow,
    PlainHTTP,
)
from bench.history import event_counts, server_duration_ms, step_timings
from worker import HTTP_LIMITS, HTTP_TIMEOUT, engine_worker, http_step_activities
from workflows.definition import WorkflowDefinition
from workflows.messages import SA_DEFINITION_ID, WORKFLOW_TYPE, LogWrite
from workflows.shared import ExecutionInput
from workflows.validation import load_definition

ENGINE = "engine"
ENGINE_NULLIO = "engine-nullio"
BASELINE = "baseline"
BASELINE_UNSANDBOXED = "baseline-unsandboxed"
BASELINE_ENGINE_ACTIVITY = "baseline-engine-activity"
VARIANTS = (ENGINE, ENGINE_NULLIO, BASELINE, BASELINE_UNSANDBOXED, BASELINE_ENGINE_ACTIVITY)
# A workflow-task queue wait this long is the poll-limit stall of docs/temporal-tuning.md (~40 ms);
# an unstalled one takes a few ms.
STALL_MS = 30.0

Starter = Callable[[Client, str, int], Awaitable[WorkflowHandle[Any, Any]]]


@dataclass
class Run:
    """One execution, as its history tells it."""

    variant: str
    steps: int
    server_ms: float
    events: int
    timings: list[dict[str, float]] = field(default_factory=list)

    @property
    def ms_per_step(self) -> float:
        return self.server_ms / self.steps


class NullIOLogger(WorkflowLogger):
    """Everything the engine does for its log but the file: the difference is the file I/O."""

    def write(self, entry: LogWrite) -> None:
        return None


# -- the workload ----------------------------------------------------------------------------


def bench_steps(target_url: str, count: int) -> list[BaselineStep]:
    """Alternating POST (with a small JSON body) and GET requests to the loopback target."""
    return [
        BaselineStep(
            id=f"s{i}",
            method="POST" if i % 2 else "GET",
            url=f"{target_url}/step/{i}",
            json_body={"i": i} if i % 2 else None,
        )
        for i in range(1, count + 1)
    ]


def engine_definition(steps: list[BaselineStep]) -> WorkflowDefinition:
    """The same requests as an engine definition document, validated like the API does."""
    document: dict[str, Any] = {"id": f"bench-{len(steps)}", "name": "bench", "steps": []}
    for step in steps:
        entry: dict[str, Any] = {"id": step.id, "type": "http", "method": step.method}
        entry["url"] = step.url
        if step.json_body is not None:
            entry["json"] = step.json_body
        document["steps"].append(entry)
    return load_definition(document)


def engine_starter(task_queue: str, target_url: str) -> Starter:
    definitions: dict[int, WorkflowDefinition] = {}
    limits_settings = load_settings()  # the default limits, as the API applies them

    async def start(client: Client, workflow_id: str, count: int) -> WorkflowHandle[Any, Any]:
        if count not in definitions:
            definitions[count] = engine_definition(bench_steps(target_url, count))
        definition = definitions[count]
        # As the API (and tests/conftest.start_definition) start an execution.
        return await client.start_workflow(
            WORKFLOW_TYPE,
            ExecutionInput(
                definition=definition,
                input_vars={},
                definition_version=1,
                limits=execution_limits(definition, limits_settings),
            ),
            id=workflow_id,
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(SA_DEFINITION_ID, definition.key),
                ]
            ),
            static_summary=f"{definition.title} (bench)",
        )

    return start


def baseline_starter(task_queue: str, target_url: str, activity: str) -> Starter:
    async def start(client: Client, workflow_id: str, count: int) -> WorkflowHandle[Any, Any]:
        workload = BaselineInput(steps=bench_steps(target_url, count), activity=activity)  # type: ignore[arg-type]
        return await client.start_workflow(
            BASELINE_WORKFLOW, workload, id=workflow_id, task_queue=task_queue
        )

    return start


async def run_once(client: Client, variant: str, start: Starter, count: int) -> Run:
    handle = await start(client, f"bench-{variant}-{uuid.uuid4()}", count)
    await handle.result()
    history = await handle.fetch_history()
    return Run(
        variant=variant,
        steps=count,
        server_ms=server_duration_ms(history),
        events=sum(event_counts(history).values()),
        timings=[t.as_dict() for t in step_timings(history)],
    )


async def sequential(
    client: Client, starters: dict[str, Starter], rounds: int, count: int
) -> list[Run]:
    """``rounds`` runs of every variant, one at a time, rotating who goes first."""
    names = list(starters)
    runs: list[Run] = []
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            runs.append(await run_once(client, name, starters[name], count))
    return runs


# -- the infrastructure ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def http_target() -> AsyncIterator[str]:
    """The loopback target in its own process; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.target", "--port", str(port)])
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"bench target exited with code {process.returncode}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@contextlib.asynccontextmanager
async def baseline_worker(
    client: Client, settings: Settings, task_queue: str, sandboxed: bool
) -> AsyncIterator[Worker]:
    """The hand-written workflow's worker: its own plain activity and the engine's."""
    async with (
        httpx.AsyncClient(timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS) as shared,
        http_step_activities(settings) as engine_http,
    ):
        yield Worker(
            client,
            task_queue=task_queue,
            workflows=[BaselineWorkflow, FanOutWorkflow],
            workflow_runner=SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner(),
            activities=[PlainHTTP(shared).send_request, engine_http.send_http_request],
        )


@contextlib.asynccontextmanager
async def running_variants(
    client: Client, settings: Settings, target_url: str, tmp_dir: Path
) -> AsyncIterator[dict[str, Starter]]:
    """The workers of every variant, polling; yields a starter per variant."""
    nullio = NullIOLogger(tmp_dir / "nullio")
    async with (
        engine_worker(client, settings, task_queue="bench-engine") as engine,
        engine_worker(client, settings, "bench-engine-nullio", logs=nullio) as engine_nullio,
        baseline_worker(client, settings, "bench-baseline", sandboxed=True) as baseline,
        baseline_worker(client, settings, "bench-unsandboxed", sandboxed=False) as unsandboxed,
        engine,
        engine_nullio,
        baseline,
        unsandboxed,
    ):
        yield {
            ENGINE: engine_starter("bench-engine", target_url),
            ENGINE_NULLIO: engine_starter("bench-engine-nullio", target_url),
            BASELINE: baseline_starter("bench-baseline", target_url, "plain"),
            BASELINE_UNSANDBOXED: baseline_starter("bench-unsandboxed", target_url, "plain"),
            BASELINE_ENGINE_ACTIVITY: baseline_starter("bench-unsandboxed", target_url, "engine"),
        }


# -- the figures -----------------------------------------------------------------------------


def summarise_variant(runs: list[Run]) -> dict[str, Any]:
    steps = runs[0].steps
    timings = [step for run in runs for step in run.timings]
    phases = summarise_phases_dicts(timings)
    return {
        "runs": len(runs),
        "ms_per_step": statistics.median(run.ms_per_step for run in runs),
        "ms_per_step_all": [round(run.ms_per_step, 2) for run in runs],
        "events_per_step": statistics.median(run.events / steps for run in runs),
        "phase_ms_per_step": phases,
        "stalled_share": sum(t["wft_queue"] >= STALL_MS for t in timings) / max(len(timings), 1),
    }


def summarise_phases_dicts(timings: list[dict[str, float]]) -> dict[str, float]:
    keys = ("activity_queue", "activity_run", "wft_queue", "wft_run", "total")
    count = max(len(timings), 1)
    return {key: sum(t[key] for t in timings) / count for key in keys}


def paired_ratio(runs: list[Run], numerator: str, denominator: str) -> float:
    """Median of per-round ratios: runs of the same round ran close together."""
    top = [r.ms_per_step for r in runs if r.variant == numerator]
    bottom = [r.ms_per_step for r in runs if r.variant == denominator]
    return statistics.median(a / b for a, b in zip(top, bottom, strict=True))


def summarise_size(runs: list[Run]) -> dict[str, Any]:
    variants = {
        name: summarise_variant([r for r in runs if r.variant == name])
        for name in dict.fromkeys(r.variant for r in runs)
    }

    def ms(name: str) -> float:
        return float(variants[name]["ms_per_step"])

    return {
        "variants": variants,
        "ratio": ms(ENGINE) / ms(BASELINE),
        "ratio_paired": paired_ratio(runs, ENGINE, BASELINE),
        "ratio_unsandboxed": ms(ENGINE) / ms(BASELINE_UNSANDBOXED),
        "ratio_unsandboxed_paired": paired_ratio(runs, ENGINE, BASELINE_UNSANDBOXED),
        "extra_ms_per_step": {
            "sandbox": ms(BASELINE) - ms(BASELINE_UNSANDBOXED),
            "total": ms(ENGINE) - ms(BASELINE_UNSANDBOXED),
            "http_activity": ms(BASELINE_ENGINE_ACTIVITY) - ms(BASELINE_UNSANDBOXED),
            "log_io": ms(ENGINE) - ms(ENGINE_NULLIO),
            "interpreter": ms(ENGINE_NULLIO) - ms(BASELINE_ENGINE_ACTIVITY),
        },
    }


def bench_settings(server_address: str, tmp_dir: Path, task_queue: str) -> Settings:
    """Settings of a bench worker: its own directories, the loopback target allowed through
    the SSRF guard."""
    return load_settings(
        temporal_address=server_address,
        temporal_task_queue=task_queue,
        workflow_log_dir=tmp_dir / "logs",
        workflow_definitions_dir=tmp_dir / "definitions",
        payload_store_dir=tmp_dir / "payloads",
        http_allowed_hosts="127.0.0.1",
    )


async def measure_steps(
    server_address: str,
    tmp_dir: Path,
    sizes: tuple[int, ...] = (20, 200),
    rounds: tuple[int, ...] = (6, 3),
    warmup: int = 1,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Sequential ms/step of every variant for each size (see the module docstring)."""
    async with http_target() as target:
        settings = bench_settings(server_address, tmp_dir, "bench-engine")
        client = await connect_when_ready(settings)
        async with running_variants(client, settings, target, tmp_dir) as starters:
            say(f"warming up ({warmup} run of {sizes[0]} steps per variant)")
            await sequential(client, starters, warmup, sizes[0])
            results: dict[str, Any] = {}
            for size, count in zip(sizes, rounds, strict=True):
                say(f"{size} sequential steps: {count} runs per variant, alternating")
                results[str(size)] = summarise_size(await sequential(client, starters, count, size))
            return results


def print_steps(results: dict[str, Any]) -> None:
    for size, result in results.items():
        print(
            f"\n[{size} steps]\n{'variant':<26}{'ms/step':>9}{'events/step':>13}{'act q':>7}"
            f"{'act run':>9}{'wft q':>7}{'wft run':>9}{'stalled':>9}"
        )
        for name, v in result["variants"].items():
            ph = v["phase_ms_per_step"]
            print(
                f"{name:<26}{v['ms_per_step']:>9.2f}{v['events_per_step']:>13.2f}"
                f"{ph['activity_queue']:>7.2f}{ph['activity_run']:>9.2f}{ph['wft_queue']:>7.2f}"
                f"{ph['wft_run']:>9.2f}{v['stalled_share']:>8.0%}"
            )
        extra = result["extra_ms_per_step"]
        print(
            f"engine/baseline {result['ratio']:.3f} (medians), {result['ratio_paired']:.3f} "
            f"(paired); the sandbox costs the baseline {extra['sandbox']:.2f} ms/step\n"
            f"engine/baseline-unsandboxed {result['ratio_unsandboxed']:.3f} (medians), "
            f"{result['ratio_unsandboxed_paired']:.3f} (paired); engine's own extra ms/step "
            f"{extra['total']:.2f} = HTTP activity {extra['http_activity']:.2f} + log file "
            f"{extra['log_io']:.2f} + interpreter {extra['interpreter']:.2f}"
        )


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


async def _main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="wfe-bench-") as tmp:
        tmp_dir = Path(tmp)
        with (tmp_dir / "temporal.log").open("wb") as log:
            server = DevServer(db_file=tmp_dir / "temporal.db", headless=True, log=log)
            async with server.running():
                print_steps(await measure_steps(server.address, tmp_dir, args.sizes, args.rounds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="engine vs hand-written workflow, ms per step")
    parser.add_argument("--sizes", type=parse_sizes, default=(20, 200))
    parser.add_argument("--rounds", type=parse_sizes, default=(6, 3))
    asyncio.run(_main(parser.parse_args()))
