"""Throughput under load: many concurrent runs, the engine's worker against a hand-written one.

    python -m bench.load [--runs 200] [--rounds 2] [--steps 20] [--cpu-load] [--foreach 10000]

One dev server (as `wfe dev` starts it), one loopback HTTP target, and each side's worker in a
process of its own, so its CPU time can be read from /proc:

- ``engine``: the engine's real worker (``python -m worker``), runs started as the API starts
  them, each a definition of N sequential `http` steps;
- ``baseline``: bench/baseline.py's hand-written workflow in ``python -m bench.baseline_worker``
  without the workflow sandbox (as the engine's worker runs), and ``baseline-sandboxed`` with
  the SDK's default sandbox.

A round starts ``--runs`` executions of one side at once and waits for all of them; the sides
alternate and the one going first rotates. Figures per side (medians over rounds): steps/s
(every step of the round over its wall time), p50/p99 run time (first to last event of each
run's history), worker and server CPU milliseconds per step (from /proc, over the round) and
how much of the worker's ran in Temporal Core's (Rust) threads, history events and Temporal
Cloud billable actions per run (bench/history.py). Engine over hand-written is taken per cycle
of rounds (each side once, next to each other in time): the median and range over cycles.

``--cpu-load`` runs a CPU-bound process beside the stack (one core busy), as when a worker
shares its machine. ``--foreach N`` also times one run of a `foreach` over N items (one
`http` step each) against the hand-written fan-out of child workflows, and reports the largest
history of either side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.runtime.settings import load_settings
from activities.runtime.temporal_client import ensure_search_attributes
from api.cli.devstack import DevServer, spawn
from api.server.executions import execution_limits
from bench.baseline import (
    BASELINE_WORKFLOW,
    FAN_OUT_CHILDREN_WORKFLOW,
    BaselineInput,
    FanOutChildrenInput,
)
from bench.history import billable_actions, server_duration_ms
from bench.steps import bench_steps, engine_starter, http_target
from workflows.messages import WORKFLOW_TYPE
from workflows.shared import ExecutionInput
from workflows.validation import load_definition

ENGINE, BASELINE, SANDBOXED = "engine", "baseline", "baseline-sandboxed"
SIDES = (ENGINE, BASELINE, SANDBOXED)
TICKS = os.sysconf("SC_CLK_TCK")


# -- CPU time from /proc -------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def cpu_ms(root: int) -> float:
    """User + system CPU of ``root`` and every process under it, in milliseconds."""
    tree, total, work = _children(), 0, [root]
    while work:
        pid = work.pop()
        work.extend(tree.get(pid, []))
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total * 1000 / TICKS


def core_cpu_ms(pid: int) -> float:
    """The CPU of ``pid``'s threads that Temporal Core (Rust) started, in milliseconds: they
    carry names of their own (``tokio-rt-worker``, ...), where Python's threads keep the
    process's name. The rest of the worker's CPU is Python's: activities, workflow code,
    the SDK's Python half."""
    task_dir = Path(f"/proc/{pid}/task")
    total = 0
    with contextlib.suppress(OSError):
        own = Path(f"/proc/{pid}/comm").read_text().strip()
        for thread in task_dir.iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if (thread / "comm").read_text().strip() == own:
                    continue
                fields = (thread / "stat").read_text().rpartition(")")[2].split()
                total += int(fields[11]) + int(fields[12])
    return total * 1000 / TICKS


# -- the workers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def worker_process(side: str, address: str, task_queue: str, tmp_dir: Path) -> Iterator[int]:
    """A worker of ``side`` in its own process; yields its pid."""
    env = dict(os.environ)
    if side == ENGINE:
        env.update(
            TEMPORAL_ADDRESS=address,
            TEMPORAL_TASK_QUEUE=task_queue,
            WORKFLOW_LOG_DIR=str(tmp_dir / "logs"),
            PAYLOAD_STORE_DIR=str(tmp_dir / "payloads"),
            WORKFLOW_DEFINITIONS_DIR=str(tmp_dir / "definitions"),
            HTTP_ALLOWED_HOSTS="127.0.0.1",
        )
        command = [sys.executable, "-m", "worker"]
    else:
        command = [sys.executable, "-m", "bench.baseline_worker", "--address", address]
        command += ["--task-queue", task_queue] + (["--sandboxed"] if side == SANDBOXED else [])
    process = spawn(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def cpu_burner(enabled: bool) -> Iterator[None]:
    """One process spinning on a core beside the stack (``--cpu-load``)."""
    if not enabled:
        yield
        return
    process = spawn([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        process.kill()
        process.wait()


# -- a round -------------------------------------------------------------------------------------


@dataclass
class Round:
    side: str
    runs: int
    steps: int
    wall_s: float
    worker_cpu_ms: float
    server_cpu_ms: float
    core_cpu_ms: float = 0.0  # the part of worker_cpu_ms in Temporal Core's threads
    run_ms: list[float] = field(default_factory=list)
    events: int = 0
    actions: int = 0

    @property
    def steps_per_s(self) -> float:
        return self.runs * self.steps / self.wall_s

    def per_step(self, ms: float) -> float:
        """``ms`` spread over every step of the round."""
        return ms / (self.runs * self.steps)

    @property
    def worker_cpu_ms_per_step(self) -> float:
        return self.per_step(self.worker_cpu_ms)


class Sides:
    """Starts a run of each side; knows each side's worker pid."""

    def __init__(self, client: Client, target: str, steps: int, pids: dict[str, int]) -> None:
        self.client, self.target, self.steps, self.pids = client, target, steps, pids
        self._engine = engine_starter(ENGINE, target)

    async def start(self, side: str) -> WorkflowHandle[Any, Any]:
        workflow_id = f"load-{side}-{uuid.uuid4()}"
        if side == ENGINE:
            return await self._engine(self.client, workflow_id, self.steps)
        work = BaselineInput(steps=bench_steps(self.target, self.steps))
        return await self.client.start_workflow(
            BASELINE_WORKFLOW, work, id=workflow_id, task_queue=side
        )


async def one_round(sides: Sides, side: str, runs: int, server_pid: int) -> Round:
    worker_before, server_before = cpu_ms(sides.pids[side]), cpu_ms(server_pid)
    core_before = core_cpu_ms(sides.pids[side])
    started = time.perf_counter()
    handles = await asyncio.gather(*(sides.start(side) for _ in range(runs)))
    await asyncio.gather(*(handle.result() for handle in handles))
    wall = time.perf_counter() - started
    measured = Round(
        side,
        runs,
        sides.steps,
        wall,
        cpu_ms(sides.pids[side]) - worker_before,
        cpu_ms(server_pid) - server_before,
        core_cpu_ms(sides.pids[side]) - core_before,
    )
    histories = await asyncio.gather(*(handle.fetch_history() for handle in handles))
    measured.run_ms = sorted(server_duration_ms(history) for history in histories)
    measured.events = len(histories[0].events)
    measured.actions = billable_actions(histories[0])
    return measured


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summary(rounds: list[Round]) -> dict[str, Any]:
    return {
        "steps_per_s": statistics.median(r.steps_per_s for r in rounds),
        "p50_run_ms": statistics.median(percentile(r.run_ms, 0.5) for r in rounds),
        "p99_run_ms": statistics.median(percentile(r.run_ms, 0.99) for r in rounds),
        "worker_cpu_ms_per_step": statistics.median(r.worker_cpu_ms_per_step for r in rounds),
        "core_cpu_ms_per_step": statistics.median(r.per_step(r.core_cpu_ms) for r in rounds),
        "server_cpu_ms_per_step": statistics.median(r.per_step(r.server_cpu_ms) for r in rounds),
        "events_per_run": rounds[0].events,
        "actions_per_run": rounds[0].actions,
    }


# -- foreach against a hand-written fan-out ------------------------------------------------------


async def largest_history_bytes(client: Client, workflow_id: str) -> int:
    """The largest history among a run and every child it started (children of children too)."""
    largest, work = 0, [workflow_id]
    while work:
        history = await client.get_workflow_handle(work.pop()).fetch_history()
        largest = max(largest, sum(event.ByteSize() for event in history.events))
        for event in history.events:
            if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
                attrs = event.start_child_workflow_execution_initiated_event_attributes
                work.append(attrs.workflow_id)
    return largest


async def foreach_against_fan_out(
    client: Client,
    target: str,
    items: int,
    pids: dict[str, int],
    rounds: int = 2,
    concurrency: int = 50,
) -> dict[str, Any]:
    """Each side ``rounds`` times, alternating (the side going first rotates); medians."""
    samples: list[dict[str, Any]] = []
    for r in range(rounds):
        samples.append(await _foreach_once(client, target, items, pids, concurrency, r % 2 == 1))
    figures = {
        key: statistics.median(sample[key] for sample in samples)
        for key in ("engine_s", "fan_out_s", "engine_cpu_ms_per_item", "fan_out_cpu_ms_per_item")
    }
    figures["ratio"] = figures["engine_s"] / figures["fan_out_s"]
    for key in ("engine_largest_history_kib", "fan_out_largest_history_kib"):
        figures[key] = max(sample[key] for sample in samples)
    figures["rounds"] = rounds
    return figures


async def _foreach_once(
    client: Client,
    target: str,
    items: int,
    pids: dict[str, int],
    concurrency: int,
    fan_out_first: bool,
) -> dict[str, Any]:
    definition = load_definition(
        {
            "id": "bench-foreach",
            "name": "bench foreach",
            "inputs": {"type": "object", "properties": {"items": {"type": "array"}}},
            "steps": [
                {
                    "id": "each",
                    "type": "foreach",
                    "items": "{items}",
                    "concurrency": concurrency,
                    "steps": [{"id": "get", "type": "http", "method": "GET", "url": target}],
                }
            ],
        }
    )
    limits = execution_limits(definition, load_settings())
    figures: dict[str, Any] = {}
    engine_id, fan_out_id = f"load-foreach-{uuid.uuid4()}", f"load-fan-out-{uuid.uuid4()}"

    async def engine() -> None:
        started, cpu = time.perf_counter(), cpu_ms(pids[ENGINE])
        await client.execute_workflow(
            WORKFLOW_TYPE,
            ExecutionInput(
                definition=definition,
                input_vars={"items": list(range(items))},
                definition_version=1,
                limits=limits,
            ),
            id=engine_id,
            task_queue=ENGINE,
        )
        figures["engine_s"] = time.perf_counter() - started
        figures["engine_cpu_ms_per_item"] = (cpu_ms(pids[ENGINE]) - cpu) / items

    async def fan_out() -> None:
        started, cpu = time.perf_counter(), cpu_ms(pids[BASELINE])
        await client.execute_workflow(
            FAN_OUT_CHILDREN_WORKFLOW,
            FanOutChildrenInput(urls=[target] * items, concurrency=concurrency, per_child=833),
            id=fan_out_id,
            task_queue=BASELINE,
        )
        figures["fan_out_s"] = time.perf_counter() - started
        figures["fan_out_cpu_ms_per_item"] = (cpu_ms(pids[BASELINE]) - cpu) / items

    for side in (fan_out, engine) if fan_out_first else (engine, fan_out):
        await side()
    figures["engine_largest_history_kib"] = await largest_history_bytes(client, engine_id) / 1024
    figures["fan_out_largest_history_kib"] = await largest_history_bytes(client, fan_out_id) / 1024
    return figures


# -- the whole benchmark -------------------------------------------------------------------------


async def measure_load(
    server: DevServer,
    tmp_dir: Path,
    runs: int = 200,
    rounds: int = 2,
    steps: int = 20,
    cpu_load: bool = False,
    foreach: int = 0,
    say: Any = print,
) -> dict[str, Any]:
    assert server.process is not None
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    await ensure_search_attributes(client)
    async with http_target() as target:
        with contextlib.ExitStack() as stack:
            pids = {
                side: stack.enter_context(worker_process(side, server.address, side, tmp_dir))
                for side in SIDES
            }
            sides = Sides(client, target, steps, pids)
            say("warming up: one small round per side")
            for side in SIDES:
                await one_round(sides, side, 10, server.process.pid)
            measured: list[Round] = []
            with cpu_burner(cpu_load):
                for r in range(rounds):
                    for side in SIDES[r % len(SIDES) :] + SIDES[: r % len(SIDES)]:
                        say(f"round {r + 1}/{rounds}: {runs} runs of {steps} steps, {side}")
                        done = await one_round(sides, side, runs, server.process.pid)
                        measured.append(done)
                        say(
                            f"  {done.steps_per_s:.1f} steps/s, worker "
                            f"{done.worker_cpu_ms_per_step:.2f} ms CPU a step, "
                            f"{done.actions} actions a run"
                        )
                result: dict[str, Any] = {
                    side: summary([m for m in measured if m.side == side])
                    for side in SIDES
                    if rounds
                }
                if foreach:
                    say(f"foreach of {foreach:,} items against a hand-written fan-out")
                    result["foreach"] = await foreach_against_fan_out(client, target, foreach, pids)
    if not rounds:
        return result
    result["ratios"], result["ratio_ranges"] = paired_ratios(measured)
    return result


def paired_ratios(measured: list[Round]) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Engine over hand-written, per cycle of rounds (each side once, next to each other in
    time), then the median over cycles; and each ratio's range. The machine's speed drifts
    between cycles more than the sides differ within one, so a cycle's own ratio is steadier
    than a ratio of medians taken over the whole run."""
    cpu: list[float] = []
    speed: list[float] = []
    cycle: dict[str, Round] = {}
    for measured_round in measured:
        cycle[measured_round.side] = measured_round
        if ENGINE in cycle and BASELINE in cycle:
            engine, baseline = cycle.pop(ENGINE), cycle.pop(BASELINE)
            cpu.append(engine.worker_cpu_ms_per_step / baseline.worker_cpu_ms_per_step)
            speed.append(engine.steps_per_s / baseline.steps_per_s)
            cycle.clear()
    series = {"worker_cpu_per_step": cpu, "steps_per_s": speed}
    ratios = {name: statistics.median(values) for name, values in series.items()}
    ranges = {name: [min(values), max(values)] for name, values in series.items()}
    return ratios, ranges


def print_load(result: dict[str, Any]) -> None:
    if ENGINE in result:
        print(
            f"\n{'side':<20}{'steps/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'worker cpu':>12}"
            f"{'of it core':>12}{'server cpu':>12}{'events':>8}{'actions':>9}"
        )
    for side in SIDES if ENGINE in result else ():
        s = result[side]
        print(
            f"{side:<20}{s['steps_per_s']:>9.1f}{s['p50_run_ms']:>9.0f}{s['p99_run_ms']:>9.0f}"
            f"{s['worker_cpu_ms_per_step']:>12.2f}{s['core_cpu_ms_per_step']:>12.2f}"
            f"{s['server_cpu_ms_per_step']:>12.2f}"
            f"{s['events_per_run']:>8}{s['actions_per_run']:>9}"
        )
    if "ratios" in result:
        ratios, ranges = result["ratios"], result["ratio_ranges"]
        cpu, speed = ranges["worker_cpu_per_step"], ranges["steps_per_s"]
        print(
            f"engine/baseline, median of paired rounds: worker CPU per step "
            f"{ratios['worker_cpu_per_step']:.3f} ({cpu[0]:.3f}-{cpu[1]:.3f}), "
            f"steps/s {ratios['steps_per_s']:.3f} ({speed[0]:.3f}-{speed[1]:.3f})"
        )
    if "foreach" in result:
        f = result["foreach"]
        print(
            f"foreach ({f['rounds']} rounds, medians): engine {f['engine_s']:.1f} s, "
            f"hand-written fan-out {f['fan_out_s']:.1f} s "
            f"({f['ratio']:.2f}); worker CPU {f['engine_cpu_ms_per_item']:.2f} vs "
            f"{f['fan_out_cpu_ms_per_item']:.2f} ms an item; largest history "
            f"{f['engine_largest_history_kib']:.0f} KiB vs "
            f"{f['fan_out_largest_history_kib']:.0f} KiB"
        )


async def _main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="wfe-load-") as tmp:
        tmp_dir = Path(tmp)
        with (tmp_dir / "temporal.log").open("wb") as log:
            server = DevServer(db_file=tmp_dir / "temporal.db", headless=True, log=log)
            async with server.running():
                result = await measure_load(
                    server, tmp_dir, args.runs, args.rounds, args.steps, args.cpu_load, args.foreach
                )
    print_load(result)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="engine vs hand-written workflow under load")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cpu-load", action="store_true")
    parser.add_argument("--foreach", type=int, default=0)
    asyncio.run(_main(parser.parse_args()))
