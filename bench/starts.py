"""Start throughput of the API against a direct Temporal client.

    python -m bench.starts [--total 2000] [--concurrency 32] [--rounds 3]

One headless dev server as `wfe dev` starts it (SQLite file, WAL, lifted poll limits), the
real API as a subprocess (``uvicorn --factory api.server.main:create_app`` on a loopback port,
configured by environment only, like production) and, in this process, one ``httpx`` client
and one Temporal client. No worker polls the task queue, so every started execution just
waits there: this measures starts, not execution.

The API saves a small definition (``PUT /api/workflows/bench-starts``: two `set` steps), then
two sides start it, ``--concurrency`` starts in flight at a time:

- ``api``: ``POST /api/workflows/run`` with ``{"workflow_id", "input_vars"}``, as a caller
  would: auth, rate limiter, definition read and input validation, then the Temporal start;
- ``direct``: ``client.start_workflow`` of the same workflow type with the input the API
  builds (``api.server.executions.start_options`` on the same stored definition: same
  ``ExecutionInput``, search attributes, summary and memo) on the same server.

The sides alternate for ``--rounds`` rounds of total/rounds starts each (the side going first
alternates too), so drift in the machine's state hits both; a few warm-up starts per side come
first and are not counted. Per side: starts/s (successful starts / wall time of the round,
median over rounds), p50 and p99 latency of one start in ms (over the successful starts of all
rounds), errors (a non-202 answer or an exception: counted, never retried), and the CPU time
per start of the API process and of this one (both sides' clients). ``ratio`` is
API starts/s / direct starts/s. Afterwards every started execution is terminated (not timed;
``python -m bench.starts`` skips that, its server is thrown away).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from activities.runtime.settings import Settings, load_settings
from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import DevServer, free_port
from api.server.db.engine import open_engine, run_blocking
from api.server.db.store import DatabaseDefinitionStore
from api.server.executions import request_hash, start_options
from api.server.store import StoredDefinition
from bench.load_client import LeanHTTP
from workflows.messages import WORKFLOW_TYPE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_ID = "bench-starts"
KEY_NAME = "bench"
API = "api"
DIRECT = "direct"
# Environment variables of proxies: children get none, so nothing leaves the loopback.
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")

Start = Callable[[int], Awaitable[str]]  # one start of input n; returns the execution id


def say(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


# -- subprocesses, configured by environment -------------------------------------------------


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """This process's environment without any setting or proxy variable, plus ``settings``'
    Temporal and storage values and ``extra``: a child sees only what we configure."""
    names = {name.upper() for name in Settings.model_fields}
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in names
        and not k.upper().startswith("WORKFLOW_SECRET_")
        and k.lower() not in PROXY_VARS
    }
    env.update(
        PYTHONUNBUFFERED="1",
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
        WORKFLOW_DEFINITIONS_DIR=str(settings.workflow_definitions_dir),
        STORAGE_URL=settings.storage_url,
        WORKFLOW_LOG_DIR=str(settings.workflow_log_dir),
        PAYLOAD_STORE_DIR=str(settings.payload_store_dir),
    )
    env.update(extra)
    return env


class Child:
    """A subprocess of ours (started from the project root), its output in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], output: Path) -> None:
        self.name = name
        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        self._file = output.open("ab")
        self.process = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdout=self._file, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])

    async def wait_for_line(self, line: str, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        while line not in self.output.read_text(errors="replace"):
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not print {line!r}:\n{self.tail()}")
            await asyncio.sleep(0.05)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; this process only."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._file.close()


@contextlib.asynccontextmanager
async def running_api(
    settings: Settings, api_key: str, output: Path, within: float = 60.0
) -> AsyncIterator[tuple[str, Child]]:
    """The real API in a subprocess on a free loopback port, ready; yields its base URL
    and the process."""
    port = free_port()
    keys = [{"key": api_key, "name": KEY_NAME, "role": "admin", "workflows": "*"}]
    env = child_env(
        settings,
        API_KEYS=json.dumps(keys),
        # The per-key rate limit (600/min, burst 100 by default) would answer most of this
        # load with 429: raised far above it, so the API's own cost is what is measured.
        API_RATE_LIMIT_PER_MINUTE="100000000",
        API_RATE_LIMIT_BURST="1000000",
    )
    argv = [sys.executable, "-m", "uvicorn", "--factory", "api.server.main:create_app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    api = Child("api", argv, env, output)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5, trust_env=False) as http:
            deadline = time.monotonic() + within
            while True:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    # No worker polls on purpose, so /readyz is 503 for `worker`: ready enough
                    # once Temporal answers.
                    if (await http.get("/readyz")).json().get("temporal") == "ok":
                        break
                if not api.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"the API did not get ready:\n{api.tail()}")
                await asyncio.sleep(0.2)
        yield url, api
    finally:
        api.stop()


# -- the workload ----------------------------------------------------------------------------


def definition() -> dict[str, Any]:
    """Two `set` steps and one integer input (validated by the API on every start)."""
    return {
        "id": WORKFLOW_ID,
        "name": "Start throughput",
        "inputs": {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"],
        },
        "steps": [
            {"id": "first", "type": "set", "values": {"label": "run {n}"}},
            {"id": "second", "type": "set", "values": {"done": "{label} done"}},
        ],
    }


def api_starter(http: LeanHTTP) -> Start:
    """Starts through the API from the lean load generator (bench/load_client.py)."""

    async def start(n: int) -> str:
        status, body = await http.post_json(
            "/api/workflows/run", {"workflow_id": WORKFLOW_ID, "input_vars": {"n": n}}
        )
        if status != 202:
            raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
        return str(json.loads(body)["execution_id"])

    return start


def saved_definition(settings: Settings) -> StoredDefinition:
    """The definition as the API saved it, read from its database."""

    async def read() -> StoredDefinition:
        engine = open_engine(settings.database)
        try:
            return await DatabaseDefinitionStore(engine).get(WORKFLOW_ID)
        finally:
            await engine.dispose()

    return run_blocking(read)


def direct_starter(client: Client, settings: Settings) -> Start:
    """What ExecutionService.start sends to Temporal for a start without Idempotency-Key."""
    stored = saved_definition(settings)

    async def start(n: int) -> str:
        input_vars = {"n": n}
        options = start_options(stored, input_vars, KEY_NAME, settings.execution_max_steps_per_run)
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            options.input,
            id=str(uuid.uuid4()),
            task_queue=settings.temporal_task_queue,
            search_attributes=options.search_attributes,
            static_summary=options.static_summary,
            static_details=options.static_details,
            memo={"request_hash": request_hash(stored.workflow_id, input_vars)},
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        return handle.id

    return start


# -- the measurement -------------------------------------------------------------------------


@dataclass
class Round:
    side: str
    starts: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)  # successful starts
    errors: list[str] = field(default_factory=list)
    api_cpu_seconds: float = 0.0  # the API process's CPU time during the round
    client_cpu_seconds: float = 0.0  # this process's (both sides' clients)

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds > 0 else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def burst(
    side: str,
    start: Start,
    numbers: Iterable[int],
    concurrency: int,
    started: list[str],
    api_pid: int,
) -> Round:
    """Start every ``n`` of ``numbers``, ``concurrency`` at a time; time each and the whole
    (and the CPU time the API process and this one spent meanwhile)."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []

    async def one(n: int) -> None:
        async with gate:
            t0 = time.perf_counter()
            try:
                execution_id = await start(n)
            except Exception as err:  # every failure is counted, none hidden or retried
                errors.append(f"{type(err).__name__}: {err}"[:300])
                return
            latencies.append((time.perf_counter() - t0) * 1000)
            started.append(execution_id)

    numbers = list(numbers)
    api_cpu, client_cpu = cpu_seconds(api_pid), time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(one(n) for n in numbers))
    seconds = time.perf_counter() - t0
    return Round(
        side,
        len(numbers),
        seconds,
        latencies,
        errors,
        api_cpu_seconds=cpu_seconds(api_pid) - api_cpu,
        client_cpu_seconds=time.process_time() - client_cpu,
    )


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), linear between the closest ranks; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def round_sizes(total: int, rounds: int) -> list[int]:
    base, extra = divmod(total, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds)]


def summarise_side(runs: list[Round]) -> dict[str, Any]:
    latencies = [ms for run in runs for ms in run.latencies_ms]
    errors = [e for run in runs for e in run.errors]
    return {
        "starts": sum(run.starts for run in runs),
        "ok": len(latencies),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "starts_per_second": statistics.median(run.per_second for run in runs),
        "starts_per_second_rounds": [round(run.per_second, 1) for run in runs],
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        # CPU per successful start: the API process (idle on the direct side) and this one.
        "api_process_cpu_ms_per_start": 1000
        * sum(run.api_cpu_seconds for run in runs)
        / max(len(latencies), 1),
        "client_cpu_ms_per_start": 1000
        * sum(run.client_cpu_seconds for run in runs)
        / max(len(latencies), 1),
    }


async def terminate_all(client: Client, ids: list[str], concurrency: int = 32) -> int:
    """Terminate the executions (none has a worker); returns how many could not be."""
    gate = asyncio.Semaphore(concurrency)

    async def one(execution_id: str) -> bool:
        async with gate:
            try:
                await client.get_workflow_handle(execution_id).terminate(reason="bench done")
            except RPCError:
                return False
            return True

    return sum(not ok for ok in await asyncio.gather(*(one(i) for i in ids)))


async def measure_starts(
    server_address: str,
    tmp_dir: Path,
    *,
    total: int = 2000,
    concurrency: int = 32,
    rounds: int = 3,
    terminate: bool = True,
) -> dict[str, Any]:
    """Starts/s and latency of the API and of a direct client (see the module docstring).

    ``terminate=False`` leaves the started executions waiting (for a throwaway server:
    terminating them costs about as long as starting them).
    """
    if total < rounds or rounds < 1 or concurrency < 1:
        raise ValueError("need rounds >= 1, concurrency >= 1 and total >= rounds")
    settings = load_settings(
        temporal_address=server_address,
        temporal_task_queue=f"bench-starts-{secrets.token_hex(4)}",  # no worker polls it
        workflow_definitions_dir=tmp_dir / "definitions",
        storage_url=f"file://{tmp_dir}",
        workflow_log_dir=tmp_dir / "logs",
        payload_store_dir=tmp_dir / "payloads",
    )
    api_key = secrets.token_urlsafe(24)
    client = await connect_when_ready(settings)
    started: list[str] = []
    runs: list[Round] = []
    warmup = min(concurrency, total)
    t_begin = time.perf_counter()
    try:
        async with (
            running_api(settings, api_key, tmp_dir / "api.out") as (url, api),
            httpx.AsyncClient(
                base_url=url,
                timeout=60,
                headers={"Authorization": f"Bearer {api_key}"},
                limits=httpx.Limits(
                    max_connections=concurrency, max_keepalive_connections=concurrency
                ),
                trust_env=False,
            ) as http,
        ):
            saved = await http.put(f"/api/workflows/{WORKFLOW_ID}", json=definition())
            if saved.status_code not in (200, 201):
                raise RuntimeError(f"saving the definition: {saved.status_code} {saved.text}")
            host, _, port = url.removeprefix("http://").partition(":")
            lean = LeanHTTP(host, int(port), {"Authorization": f"Bearer {api_key}"})
            starters = {API: api_starter(lean), DIRECT: direct_starter(client, settings)}
            numbers = iter(range(10**9))
            say(f"warming up: {warmup} starts per side")
            for side, start in starters.items():
                warm = await burst(
                    side,
                    start,
                    [next(numbers) for _ in range(warmup)],
                    concurrency,
                    started,
                    api.pid,
                )
                if warm.errors:
                    raise RuntimeError(f"{side} warm-up failed: {warm.errors[0]}")
            for r, size in enumerate(round_sizes(total, rounds)):
                order = [API, DIRECT] if r % 2 == 0 else [DIRECT, API]
                for side in order:
                    run = await burst(
                        side,
                        starters[side],
                        [next(numbers) for _ in range(size)],
                        concurrency,
                        started,
                        api.pid,
                    )
                    runs.append(run)
                    say(
                        f"round {r + 1}/{rounds} {side:<6}: {size} starts, "
                        f"{run.per_second:.0f}/s, {len(run.errors)} errors"
                    )
        elapsed = time.perf_counter() - t_begin
    finally:
        not_terminated = 0
        if terminate:
            say(f"terminating {len(started)} executions")
            not_terminated = await terminate_all(client, started)
    sides = {side: summarise_side([r for r in runs if r.side == side]) for side in (API, DIRECT)}
    return {
        "config": {
            "total": total,
            "concurrency": concurrency,
            "rounds": rounds,
            "warmup_per_side": warmup,
            "task_queue": settings.temporal_task_queue,
        },
        API: sides[API],
        DIRECT: sides[DIRECT],
        "ratio": sides[API]["starts_per_second"] / sides[DIRECT]["starts_per_second"]
        if sides[DIRECT]["starts_per_second"]
        else float("nan"),
        # Each round's two sides ran back to back: the median of their ratios is less
        # disturbed by the server slowing down as executions pile up.
        "ratio_paired": statistics.median(
            a / d
            for a, d in zip(
                sides[API]["starts_per_second_rounds"],
                sides[DIRECT]["starts_per_second_rounds"],
                strict=True,
            )
            if d
        ),
        "elapsed_seconds": elapsed,
        "not_terminated": not_terminated,
    }


def print_starts(result: dict[str, Any]) -> None:
    c = result["config"]
    print(
        f"\n{c['total']} starts per side, {c['concurrency']} in flight, {c['rounds']} rounds "
        f"({result['elapsed_seconds']:.1f} s)"
    )
    print(
        f"{'side':<8}{'starts/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'API cpu ms':>12}{'client cpu ms':>15}  starts/s per round"
    )
    for side in (API, DIRECT):
        s = result[side]
        print(
            f"{side:<8}{s['starts_per_second']:>10.1f}{s['p50_ms']:>9.1f}{s['p99_ms']:>9.1f}"
            f"{s['errors']:>8}{s['api_process_cpu_ms_per_start']:>12.2f}"
            f"{s['client_cpu_ms_per_start']:>15.2f}  {s['starts_per_second_rounds']}"
        )
        for sample in s["error_samples"]:
            print(f"    {sample}")
    print(
        f"API / direct starts/s: {result['ratio']:.3f} (medians), "
        f"{result['ratio_paired']:.3f} (median of per-round ratios)"
    )
    if result["not_terminated"]:
        print(f"{result['not_terminated']} executions could not be terminated")


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-starts-") as tmp:
        tmp_dir = Path(tmp)
        with (tmp_dir / "temporal.log").open("ab") as log:
            server = DevServer(db_file=tmp_dir / "temporal.db", headless=True, log=log)
            async with server.running():
                return await measure_starts(
                    server.address,
                    tmp_dir,
                    total=args.total,
                    concurrency=args.concurrency,
                    rounds=args.rounds,
                    terminate=False,  # the server and its file go away with this run
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=2000, help="starts per side")
    parser.add_argument("--concurrency", type=int, default=32, help="starts in flight")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = parser.parse_args(argv)
    result = asyncio.run(_main(args))
    print_starts(result)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
