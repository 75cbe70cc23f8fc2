"""How the dev server's history poll limits change step time and server CPU.

    python -m bench.poll_limits [--settings 20:fsync,20,100,500,1000,5000] [--steps 100]

For each setting it starts a fresh headless dev server on a SQLite file (as `wfe dev` does),
a worker with a hand-written workflow of N sequential no-op activities, and measures:

- **ms/step**: one run of N steps at a time (median over ``--runs``), read from its history
  (first to last event / N), so client and start-up costs are left out;
- **idle CPU**: the server process's CPU time over ``--idle`` seconds with nothing running,
  as a share of one core;
- **under load**: ``--load`` runs of N steps at once: steps per second, and the server's CPU
  time per step.

A setting is ``RPS`` (the three limits `history.{transfer,timer,visibility}ProcessorMaxPollRPS`
set to RPS, SQLite in WAL mode at synchronous=normal, as api/cli/devstack.py runs it) or
``RPS:fsync`` (the same limits on SQLite's defaults: rollback journal, fsync per commit).
The figures chose ``api.cli.devstack.POLL_LIMIT_RPS``; bench/README.md has them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from activities.runtime.settings import load_settings
from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import SQLITE_PRAGMAS, DevServer, poll_limits
from bench.history import server_duration_ms

TASK_QUEUE = "bench-poll-limits"
_TICK = os.sysconf("SC_CLK_TCK")


@activity.defn(name="bench_noop")
async def noop(index: int) -> int:
    return index


@workflow.defn(name="BenchNoopSteps", sandboxed=False)  # a bench module run as __main__
class NoopSteps:
    """N sequential no-op activities: nothing but Temporal's own cost per step."""

    @workflow.run
    async def run(self, steps: int) -> int:
        for index in range(steps):
            await workflow.execute_activity(
                "bench_noop", index, start_to_close_timeout=timedelta(seconds=30)
            )
        return steps


@dataclass(frozen=True)
class Setting:
    rps: int
    wal: bool

    @classmethod
    def parse(cls, text: str) -> Setting:
        rps, _, mode = text.partition(":")
        if mode not in ("", "fsync"):
            raise argparse.ArgumentTypeError(f"{text!r}: a setting is RPS or RPS:fsync")
        return cls(int(rps), wal=mode != "fsync")

    @property
    def label(self) -> str:
        return f"{self.rps}" + ("" if self.wal else " (fsync)")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


async def one_run(client: Client, steps: int) -> float:
    handle = await client.start_workflow(
        NoopSteps.run, steps, id=f"poll-{uuid.uuid4()}", task_queue=TASK_QUEUE
    )
    await handle.result()
    return server_duration_ms(await handle.fetch_history()) / steps


async def measure(setting: Setting, args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    server = DevServer(
        db_file=tmp / f"temporal-{setting.rps}-{int(setting.wal)}.db",
        headless=True,
        dynamic_config=poll_limits(setting.rps),
        sqlite_pragmas=SQLITE_PRAGMAS if setting.wal else (),
    )
    async with server.running():
        assert server.process is not None
        pid = server.process.pid
        client = await connect_when_ready(load_settings(temporal_address=server.address))
        async with Worker(client, task_queue=TASK_QUEUE, workflows=[NoopSteps], activities=[noop]):
            await one_run(client, args.steps)  # warm-up
            per_step = [await one_run(client, args.steps) for _ in range(args.runs)]
            await asyncio.sleep(2)  # let the last run's tasks drain
            idle_from = cpu_seconds(pid)
            await asyncio.sleep(args.idle)
            idle_share = (cpu_seconds(pid) - idle_from) / args.idle
            load_from, began = cpu_seconds(pid), time.perf_counter()
            await asyncio.gather(*(one_run(client, args.steps) for _ in range(args.load)))
            wall = time.perf_counter() - began
            load_cpu = cpu_seconds(pid) - load_from
    total_steps = args.load * args.steps
    return {
        "ms_per_step": statistics.median(per_step),
        "idle_cpu_share": idle_share,
        "load_steps_per_s": total_steps / wall,
        "load_server_cpu_ms_per_step": load_cpu * 1000 / total_steps,
        "load_server_cpu_share": load_cpu / wall,
    }


def print_row(setting: Setting, figures: dict[str, float]) -> None:
    print(
        f"{setting.label:>12}  {figures['ms_per_step']:>9.1f}  {figures['idle_cpu_share']:>8.1%}"
        f"  {figures['load_steps_per_s']:>11.0f}  {figures['load_server_cpu_ms_per_step']:>13.2f}"
        f"  {figures['load_server_cpu_share']:>10.0%}",
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> None:
    print(
        f"{args.steps}-step no-op runs; idle {args.idle:g} s; load {args.load} runs at once\n"
        f"{'poll RPS':>12}  {'ms/step':>9}  {'idle CPU':>8}  {'load step/s':>11}"
        f"  {'server CPU ms':>13}  {'server CPU':>10}"
    )
    with tempfile.TemporaryDirectory(prefix="wfe-poll-") as tmp:
        for setting in args.settings:
            print_row(setting, await measure(setting, args, Path(tmp)))
    print("(server CPU ms: server CPU time per step under load; shares are of one core)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--settings",
        type=lambda text: [Setting.parse(part) for part in text.split(",")],
        default=[Setting.parse(p) for p in ["20:fsync", "20", "100", "500", "1000", "5000"]],
    )
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--load", type=int, default=8)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main_async(parse_args()))
