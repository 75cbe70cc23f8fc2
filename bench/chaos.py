"""Chaos: many executions through the API while workers are killed and Temporal restarts.

    python -m bench.chaos                             # 200 executions, 3 kills, 1 restart
    python -m bench.chaos --executions 50 --kills 1 --no-restart
    python -m bench.chaos --storage s3                # logs and large values in S3 (moto)

Everything runs on loopback and starts here, in a temporary directory: a Temporal dev server
on a SQLite file (fixed port, so a restart keeps the address), a side-effect sink (an HTTP
server in this process recording every delivery with its Idempotency-Key and the worker that
sent it), the API (``uvicorn --factory api.server.main:create_app``) and two workers
(``python -m worker``), all configured by environment like production. With ``--storage s3``
the execution logs and large values live in an S3 bucket on moto's server (a subprocess on
loopback, bench/s3.py) instead of the temporary directory: ``STORAGE_URL=s3://...`` and
``S3_ENDPOINT_URL`` for every process, and the figures read the logs from the bucket.

The script saves one definition (three http steps with reply delays, a set, a condition, a
short delay) with ``PUT /api/workflows/chaos``, starts the executions with
``POST /api/workflows/run`` (each with its own Idempotency-Key, so a retried start cannot
start twice), and meanwhile, every ``--interval`` seconds, SIGKILLs a random worker and starts
it again, or SIGKILLs the Temporal server and starts it again on the same file. When every
execution is terminal it reads all histories, logs and the sink's ledger and prints
the durability figures (also written to ``bench/results/chaos-<timestamp>.json``):

- runs started vs terminal (lost);
- side effects: applied (deduplicated by Idempotency-Key) vs expected, duplicates (keys that
  match no step visit of the log) and raw redeliveries (same key again);
- completed steps re-run (an activity scheduled again for a step visit that had completed);
- non-determinism errors (WorkflowTaskFailed in histories, worker output);
- logs complete (terminal, contiguous, same activity steps as the history);
- recovery time p50/p99 per crash kind: *step* = crash -> an activity step that was in flight
  (for a worker kill: one the killed worker was running) completes; *run* = crash -> the
  affected run's next completed workflow task after its disruption (in-flight step or lost
  workflow task) is over, i.e. the run moves on again;
- metrics against what ran: each worker serves WORKER_METRICS_ADDRESS; its
  ``wfe_steps_total{workflow_id="chaos"}`` is scraped just before it is killed and, for the
  survivors, at the end, summed over every worker process by (type, status) and compared with
  the step records of the logs (a workflow task lost with a killed worker is done again by
  another, so its steps can be counted twice; steps finished between the last scrape and the
  kill are not counted).

Exit status 1 if any figure is off (lost runs, duplicate effects, re-runs, non-determinism,
incomplete logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from activities.runtime.settings import Settings, load_settings
from activities.runtime.storage import Storage, open_stores
from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import DevServer, free_port
from bench.history import ACTIVITY_CLOSE, TERMINAL, event_time
from bench.s3 import moto_subprocess, new_bucket
from workflows.steps import idempotency_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).parent / "results"
READY_LINE = "worker polling task queue"
WORKFLOW_ID = "chaos"
# Reply delays of the sink, per path: the side effects take a while, so crashes find them
# in flight.
REPLY_DELAYS = {"/reserve": 0.5, "/notify-even": 0.3, "/notify-odd": 0.3, "/charge": 1.5}
NONDETERMINISM = ("nondetermin", "non-determin")


def say(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


# -- the side-effect sink -----------------------------------------------------------------------


@dataclass
class Delivery:
    key: str
    execution_id: str | None
    path: str
    agent: str  # User-Agent: which worker process sent it
    received: float  # epoch seconds
    answered: float | None = None  # None: the sender hung up before the answer


class Sink:
    """A threaded loopback HTTP server: answers 200 after the path's delay, records all."""

    def __init__(self, delays: dict[str, float]) -> None:
        self.delays = delays
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                path = self.path.split("?")[0]
                delivery = Delivery(
                    key=self.headers.get("idempotency-key", ""),
                    execution_id=body.get("execution_id") if isinstance(body, dict) else None,
                    path=path,
                    agent=self.headers.get("user-agent", ""),
                    received=time.time(),
                )
                with sink._lock:
                    sink.deliveries.append(delivery)
                time.sleep(sink.delays.get(path, 0.0))
                data = json.dumps({"ok": True, "path": path}).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    delivery.answered = time.time()
                except OSError:
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024  # two workers open up to 200 connections each

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # killed workers reset their connections: expected here

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Sink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)


# -- subprocesses -------------------------------------------------------------------------------


def base_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The parent's environment minus anything that names a setting, plus these settings."""
    names = {name.upper() for name in Settings.model_fields}
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in names and not k.upper().startswith("WORKFLOW_SECRET_")
    }
    env.update(
        PYTHONUNBUFFERED="1",
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
        WORKFLOW_LOG_DIR=str(settings.workflow_log_dir),
        WORKFLOW_DEFINITIONS_DIR=str(settings.workflow_definitions_dir),
        PAYLOAD_STORE_DIR=str(settings.payload_store_dir),
        STORAGE_URL=settings.storage_url,
        HTTP_ALLOWED_HOSTS="127.0.0.1",
        # Killed workers' runs move to the survivors within seconds (what the figures time).
        WORKER_STICKY_TIMEOUT_SECONDS="3",
    )
    if settings.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    env.update(extra)
    return env


class Process:
    """A subprocess whose stdout and stderr go to a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], output: Path) -> None:
        self.name = name
        self.output = output
        self._file = output.open("ab")
        self.process = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdout=self._file, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    async def wait_for_line(self, line: str, within: float = 120.0) -> None:
        deadline = time.monotonic() + within
        while line not in self.text():
            if not self.alive() or time.monotonic() > deadline:
                tail = "\n".join(self.text().splitlines()[-30:])
                raise RuntimeError(f"{self.name} did not print {line!r}:\n{tail}")
            await asyncio.sleep(0.05)

    def kill(self) -> float:
        at = time.time()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._file.close()
        return at

    def stop(self, grace: float = 15.0) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        self._file.close()


class WorkerSlot:
    """One of the worker processes; killing it starts the next generation in its place."""

    def __init__(self, slot: int, settings: Settings, directory: Path) -> None:
        self.slot = slot
        self.settings = settings
        self.directory = directory
        self.generation = 0
        self.current: Process | None = None
        self.history: list[dict[str, Any]] = []  # every process this slot ran

    @property
    def agent(self) -> str:
        return f"chaos-worker-{self.slot}-gen{self.generation}"

    def start(self) -> Process:
        self.generation += 1
        # A fresh metrics port per process: the killed one's may linger.
        metrics = f"127.0.0.1:{free_port()}"
        env = base_env(self.settings, HTTP_USER_AGENT=self.agent, WORKER_METRICS_ADDRESS=metrics)
        name = f"worker-{self.slot}-gen{self.generation}"
        self.current = Process(
            name, [sys.executable, "-m", "worker"], env, self.directory / f"{name}.out"
        )
        self.history.append(
            {
                "name": name,
                "pid": self.current.pid,
                "identity": f"{self.current.pid}@{socket.gethostname()}",
                "agent": self.agent,
                "output": str(self.current.output),
                "metrics_address": metrics,
            }
        )
        return self.current

    async def scrape(self) -> None:
        """Record the current process's step counters (before a kill, or at the end)."""
        entry = self.history[-1]
        entry["steps_metrics"] = await scrape_steps(entry["metrics_address"])


# -- worker metrics -------------------------------------------------------------------------------


def parse_steps(text: str) -> dict[str, float]:
    """``wfe_steps_total{workflow_id="chaos",type,status}`` by "type/status"."""
    counts: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        if not line.startswith("wfe_steps_total{"):
            continue
        labels_text, _, value = line[len("wfe_steps_total{") :].rpartition("} ")
        labels = dict(
            (part.split("=", 1)[0], part.split("=", 1)[1].strip('"'))
            for part in labels_text.split(",")
            if "=" in part
        )
        if labels.get("workflow_id") == WORKFLOW_ID:
            counts[f"{labels.get('type')}/{labels.get('status')}"] += float(value)
    return dict(counts)


async def scrape_steps(address: str) -> dict[str, float] | None:
    try:
        async with httpx.AsyncClient(timeout=3) as http:
            answer = await http.get(f"http://{address}/metrics")
        return parse_steps(answer.text) if answer.status_code == 200 else None
    except httpx.HTTPError:
        return None


def metrics_against_logs(
    workers: list[dict[str, Any]], logs: dict[str, dict[str, Any] | None]
) -> dict[str, Any]:
    """Steps counted by the workers' metrics vs the step records of the logs, by type/status."""
    counted: Counter[str] = Counter()
    scraped = 0
    for worker in workers:
        if worker.get("steps_metrics") is not None:
            scraped += 1
            for key, value in worker["steps_metrics"].items():
                counted[key] += int(value)
    logged: Counter[str] = Counter(
        f"{step.get('type')}/{step.get('status')}"
        for log in logs.values()
        for step in (log or {}).get("steps", [])
    )
    keys = sorted(set(counted) | set(logged))
    return {
        "workers_scraped": scraped,
        "workers": len(workers),
        "by_type_status": {k: {"metrics": counted[k], "logs": logged[k]} for k in keys},
        "metrics_total": sum(counted.values()),
        "logs_total": sum(logged.values()),
        "difference": sum(counted.values()) - sum(logged.values()),
        "exact": all(counted[k] == logged[k] for k in keys),
    }


# -- the workload -------------------------------------------------------------------------------


def definition(sink_url: str) -> dict[str, Any]:
    retry = {"max_attempts": 6, "initial_interval_seconds": 0.5, "backoff_coefficient": 2.0}

    def http(step_id: str, path: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": step_id,
            "type": "http",
            "method": "POST",
            "url": f"{sink_url}{path}",
            "json": {"execution_id": "{execution.id}", "step": step_id, "n": "{n}"},
            # The heartbeat timeout (workflows.steps.heartbeat_timeout: 2 s for 6 s) is how long
            # a dead worker's step waits before it is retried elsewhere.
            "timeout_seconds": 6,
            "retry": retry,
            **extra,
        }

    return {
        "id": WORKFLOW_ID,
        "name": "Chaos workload",
        "inputs": {
            "type": "object",
            "properties": {"n": {"type": "integer"}},
            "required": ["n"],
        },
        "steps": [
            {"id": "prepare", "type": "set", "values": {"label": "run {n}"}},
            http("reserve", "/reserve", output="reserved"),
            {
                "id": "route",
                "type": "condition",
                "branches": [{"when": "n % 2 == 0", "next": "notify_even"}],
                "default": "notify_odd",
            },
            http("notify_even", "/notify-even", next="pause"),
            http("notify_odd", "/notify-odd"),
            {"id": "pause", "type": "delay", "seconds": 2},
            http("charge", "/charge", output="charged"),
            {
                "id": "done",
                "type": "set",
                "values": {
                    "summary": "{label}: reserved={reserved.status} charged={charged.status}"
                },
            },
        ],
    }


async def start_executions(
    api: httpx.AsyncClient, count: int, started: dict[int, str], concurrency: int = 16
) -> list[str]:
    """POST /api/workflows/run for n in range(count), filling ``started`` (n -> execution id)
    as the answers come; a retried start reuses its Idempotency-Key. Returns the errors."""
    errors: list[str] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            for attempt in range(60):
                try:
                    answer = await api.post(
                        "/api/workflows/run",
                        json={"workflow_id": WORKFLOW_ID, "input_vars": {"n": n}},
                        headers={"Idempotency-Key": f"chaos-start-{n}"},
                    )
                except httpx.HTTPError as err:
                    problem = f"{type(err).__name__}"
                else:
                    if answer.status_code in (200, 202):
                        started[n] = answer.json()["execution_id"]
                        return
                    problem = f"{answer.status_code} {answer.text[:200]}"
                    if answer.status_code < 500 and answer.status_code != 429:
                        errors.append(f"start {n}: {problem}")
                        return
                await asyncio.sleep(min(0.25 * (attempt + 1), 2.0))
            errors.append(f"start {n}: gave up: {problem}")

    await asyncio.gather(*(one(n) for n in range(count)))
    return errors


# -- reading histories --------------------------------------------------------------------------


@dataclass
class Activity:
    step_id: str | None
    key: str | None
    scheduled: float
    attempt: int = 1
    identity: str = ""
    outcome: str | None = None
    closed: float | None = None
    completions: int = 0


@dataclass
class Execution:
    """What one execution's histories (all runs) say."""

    execution_id: str
    started: float | None = None
    status: str | None = None
    closed: float | None = None
    activities: list[Activity] = field(default_factory=list)
    wft_completed: list[float] = field(default_factory=list)
    # (time, task queue the lost task was scheduled on, identity of the worker that took it)
    wft_timeouts: list[tuple[float, str, str]] = field(default_factory=list)
    nondeterminism: list[str] = field(default_factory=list)
    events: int = 0

    def reruns(self) -> list[Activity]:
        done: set[str] = set()
        again = []
        for activity in self.activities:
            if activity.key is not None and activity.key in done:
                again.append(activity)
            if activity.key is not None and activity.outcome == "completed":
                done.add(activity.key)
        return again + [a for a in self.activities if a.completions > 1]


def fold(events: Iterable[HistoryEvent], execution: Execution) -> str | None:
    """Add one run's events; returns the next run id after a continue-as-new."""
    scheduled: dict[int, Activity] = {}
    wft_queue, wft_identity = "", ""
    for event in events:
        execution.events += 1
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED and execution.started is None:
            execution.started = event_time(event)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            try:
                request = json.loads(attrs.input.payloads[0].data)
            except (IndexError, ValueError):
                request = {}
            activity = Activity(
                request.get("step_id"), request.get("idempotency_key"), event_time(event)
            )
            scheduled[event.event_id] = activity
            execution.activities.append(activity)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            scheduled[attrs.scheduled_event_id].attempt = attrs.attempt
            scheduled[attrs.scheduled_event_id].identity = attrs.identity
        elif kind in ACTIVITY_CLOSE:
            outcome, name = ACTIVITY_CLOSE[kind]
            activity = scheduled[getattr(event, name).scheduled_event_id]
            activity.outcome, activity.closed = outcome, event_time(event)
            activity.completions += outcome == "completed"
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            wft_queue = event.workflow_task_scheduled_event_attributes.task_queue.name
            wft_identity = ""
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            wft_identity = event.workflow_task_started_event_attributes.identity
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            execution.wft_completed.append(event_time(event))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            execution.wft_timeouts.append((event_time(event), wft_queue, wft_identity))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            attrs = event.workflow_task_failed_event_attributes
            if (
                attrs.cause
                == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR
                or any(m in attrs.failure.message.lower() for m in NONDETERMINISM)
            ):
                execution.nondeterminism.append(attrs.failure.message)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        elif kind in TERMINAL:
            execution.status, execution.closed = TERMINAL[kind], event_time(event)
    return None


async def read_execution(client: Client, execution_id: str) -> Execution:
    description = await client.get_workflow_handle(execution_id).describe()
    info = description.raw_description.workflow_execution_info
    execution = Execution(execution_id)
    run_id: str | None = info.first_run_id or description.run_id
    while run_id is not None:
        history = await client.get_workflow_handle(execution_id, run_id=run_id).fetch_history()
        run_id = fold(history.events, execution)
    return execution


# -- the figures --------------------------------------------------------------------------------


def log_problems(log: dict[str, Any] | None, execution: Execution) -> list[str]:
    """Why this execution's log is not complete (empty: it is)."""
    if log is None:
        return ["no readable log"]
    problems = []
    if log.get("status") != execution.status:
        problems.append(f"status {log.get('status')} vs history {execution.status}")
    if not log.get("end_time"):
        problems.append("no end_time")
    steps = log.get("steps", [])
    if [s.get("seq") for s in steps] != list(range(len(steps))):
        problems.append("steps not contiguous")
    if any(s.get("status") not in ("success", "failed", "cancelled") for s in steps):
        problems.append("unfinished step")
    logged = [s["step_id"] for s in steps if s.get("type") in ("http", "ai")]
    if logged != [a.step_id for a in execution.activities]:
        problems.append("activity steps differ from the history")
    return problems


def read_log(logs: Storage, execution_id: str) -> dict[str, Any] | None:
    """The log document as stored (a file or an S3 object), without merging any journal: a
    finished run's document alone must be complete."""
    try:
        blob = logs.get(f"{execution_id}.json")
        return json.loads(blob.data) if blob is not None else None
    except (OSError, ValueError):
        return None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": statistics.fmean(values) if values else None,
    }


def blame(crashes: list[dict[str, Any]], at: float, queue: str, identity: str) -> int | None:
    """Which crash lost this workflow task: the killed worker that held it (it took the task,
    or the task waited on its sticky queue, named ``<identity>-<uuid>``), else the latest
    server restart before it, else the latest crash before it."""
    before = [i for i, c in enumerate(crashes) if c["at"] < at]
    for i in reversed(before):
        held = crashes[i].get("identity")
        if held and (identity == held or queue.startswith(f"{held}-")):
            return i
    restarts = [i for i in before if crashes[i]["kind"] == "server_restart"]
    return (restarts or before or [None])[-1]


def recovery(
    crashes: list[dict[str, Any]], executions: list[Execution], deliveries: list[Delivery]
) -> dict[str, Any]:
    """Per crash: in-flight steps (crash -> completed) and affected runs (crash -> moving)."""
    agents_by_key: dict[str, set[str]] = defaultdict(set)
    for delivery in deliveries:
        agents_by_key[delivery.key].add(delivery.agent)
    per_kind: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"step": [], "run": []})
    overlapped: Counter[str] = Counter()
    later = {
        i: min((c["at"] for c in crashes[i + 1 :]), default=float("inf"))
        for i in range(len(crashes))
    }
    for crash in crashes:
        crash["in_flight_steps"] = crash["lost_workflow_tasks"] = crash["affected_runs"] = 0
        crash["step_seconds"], crash["run_seconds"] = [], []
    for execution in executions:
        resolved: dict[int, list[float]] = defaultdict(list)
        for index, crash in enumerate(crashes):
            for activity in execution.activities:
                if not (activity.scheduled < crash["at"] < (activity.closed or 0)):
                    continue
                if crash["kind"] == "worker_kill" and crash["agent"] not in agents_by_key.get(
                    activity.key or "", set()
                ):
                    continue  # in flight on another worker: not this crash's
                assert activity.closed is not None
                per_kind[crash["kind"]]["step"].append(activity.closed - crash["at"])
                crash["step_seconds"].append(round(activity.closed - crash["at"], 3))
                resolved[index].append(activity.closed)
                crash["in_flight_steps"] += 1
        for at, queue, identity in execution.wft_timeouts:
            index = blame(crashes, at, queue, identity)
            if index is not None:
                resolved[index].append(at)
                crashes[index]["lost_workflow_tasks"] += 1
        for index, times in resolved.items():
            moved = [t for t in execution.wft_completed if t > max(times)]
            if moved:
                crash = crashes[index]
                per_kind[crash["kind"]]["run"].append(min(moved) - crash["at"])
                crash["run_seconds"].append(round(min(moved) - crash["at"], 3))
                crash["affected_runs"] += 1
                overlapped[crash["kind"]] += min(moved) > later[index]
    return {
        kind: {
            **{k: summary(v) for k, v in parts.items()},
            "runs_still_recovering_at_next_crash": overlapped[kind],
        }
        for kind, parts in per_kind.items()
    }


def figures(
    started: dict[int, str],
    start_errors: list[str],
    executions: list[Execution],
    logs: dict[str, dict[str, Any] | None],
    deliveries: list[Delivery],
    crashes: list[dict[str, Any]],
    worker_outputs: list[str],
) -> dict[str, Any]:
    ids = set(started.values())
    ours = [d for d in deliveries if d.execution_id in ids]
    per_key = Counter(d.key for d in ours)
    expected: dict[str, str] = {}
    for execution_id, log in logs.items():
        for step in (log or {}).get("steps", []):
            if step.get("type") == "http":
                expected[idempotency_key(execution_id, step["step_id"], step["seq"])] = step[
                    "step_id"
                ]
    duplicates = sorted(set(per_key) - set(expected))
    missing = sorted(set(expected) - set(per_key))
    statuses = Counter(e.status or "running" for e in executions)
    incomplete = {
        e.execution_id: problems
        for e in executions
        if (problems := log_problems(logs.get(e.execution_id), e))
    }
    worker_nondeterminism = [
        line
        for text in worker_outputs
        for line in text.splitlines()
        if any(m in line.lower() for m in NONDETERMINISM)
    ]
    terminal = sum(1 for e in executions if e.status is not None)
    return {
        "runs": {
            "requested": len(started) + len(start_errors),
            "started": len(ids),
            "terminal": terminal,
            "lost": len(ids) - terminal,
            "start_errors": start_errors,
            "statuses": dict(statuses),
        },
        "side_effects": {
            "applied": len(per_key),
            "expected": len(expected),
            "duplicates": len(duplicates),
            "duplicate_keys": duplicates[:20],
            "missing": len(missing),
            "raw_deliveries": sum(per_key.values()),
            "redeliveries": sum(per_key.values()) - len(per_key),
            "redelivered_keys": sum(1 for c in per_key.values() if c > 1),
            "hung_up": sum(1 for d in ours if d.answered is None),
        },
        "steps": {
            "activities": sum(len(e.activities) for e in executions),
            "rerun_after_completion": sum(len(e.reruns()) for e in executions),
            "retried": sum(1 for e in executions for a in e.activities if a.attempt > 1),
            "workflow_task_timeouts": sum(len(e.wft_timeouts) for e in executions),
        },
        "nondeterminism": {
            "histories": sum(len(e.nondeterminism) for e in executions),
            "worker_output": len(worker_nondeterminism),
        },
        "logs": {
            "complete": len(executions) - len(incomplete),
            "total": len(executions),
            "percent": 100.0 * (len(executions) - len(incomplete)) / max(1, len(executions)),
            "incomplete": dict(list(incomplete.items())[:20]),
        },
        "recovery_seconds": recovery(crashes, executions, deliveries),
        "run_duration_seconds": summary(
            [e.closed - e.started for e in executions if e.closed and e.started]
        ),
        "history_events": sum(e.events for e in executions),
    }


def verdict(result: dict[str, Any]) -> list[str]:
    f = result["figures"]
    problems = []
    if f["runs"]["lost"] or f["runs"]["start_errors"]:
        problems.append("lost or unstarted runs")
    if f["side_effects"]["duplicates"] or f["side_effects"]["missing"]:
        problems.append("duplicate or missing side effects")
    if f["steps"]["rerun_after_completion"]:
        problems.append("completed steps re-run")
    if f["nondeterminism"]["histories"] or f["nondeterminism"]["worker_output"]:
        problems.append("non-determinism")
    if f["logs"]["complete"] != f["logs"]["total"]:
        problems.append("incomplete logs")
    return problems


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_report(result: dict[str, Any]) -> None:
    f, c = result["figures"], result["config"]
    runs, effects, steps = f["runs"], f["side_effects"], f["steps"]
    kinds = Counter(crash["kind"] for crash in result["crashes"])
    print()
    print(
        f"chaos: {c['executions']} executions through the API, "
        f"{kinds.get('worker_kill', 0)} worker kills, {kinds.get('server_restart', 0)} "
        f"server restarts, {c['workers']} workers, {result['elapsed_seconds']:.1f} s"
    )
    print(
        f"runs started {runs['started']} / requested {runs['requested']}, terminal "
        f"{runs['terminal']} {runs['statuses']}, lost {runs['lost']}"
    )
    print(
        f"side effects applied (dedup by Idempotency-Key) {effects['applied']} of "
        f"{effects['expected']} step visits; duplicates {effects['duplicates']}, missing "
        f"{effects['missing']}; raw deliveries {effects['raw_deliveries']}, redeliveries "
        f"{effects['redeliveries']} ({effects['redelivered_keys']} keys, "
        f"{effects['hung_up']} hung up mid-call)"
    )
    print(
        f"completed steps re-run {steps['rerun_after_completion']} "
        f"(activities {steps['activities']}, retried {steps['retried']}, "
        f"workflow task timeouts {steps['workflow_task_timeouts']})"
    )
    nd = f["nondeterminism"]
    print(
        f"non-determinism errors {nd['histories'] + nd['worker_output']} "
        f"(histories {nd['histories']}, worker output {nd['worker_output']})"
    )
    api = result["api_after_chaos"]
    print(f"API status after the chaos agrees with history for {api['agree']}/{api['asked']}")
    logs = f["logs"]
    print(
        f"logs complete {logs['complete']}/{logs['total']} ({logs['percent']:.1f} %) "
        f"in {c.get('storage_location', c.get('storage', 'file'))}"
    )
    m = f.get("metrics")
    if m is not None:
        worst = {k: v for k, v in m["by_type_status"].items() if v["metrics"] != v["logs"]}
        print(
            f"metrics wfe_steps_total vs logs: {m['metrics_total']} vs {m['logs_total']} steps "
            f"(difference {m['difference']:+d}, {m['workers_scraped']}/{m['workers']} worker "
            f"processes scraped){'; exact' if m['exact'] else '; differs: ' + str(worst)}"
        )
    d = f["run_duration_seconds"]
    print(f"run duration (start -> close) p50 {_s(d['p50'])} p99 {_s(d['p99'])} s")
    print("recovery, seconds (step: crash -> in-flight step done; run: crash -> run moves on)")
    for kind, parts in f["recovery_seconds"].items():
        for part in ("step", "run"):
            s = parts[part]
            note = ""
            still = parts["runs_still_recovering_at_next_crash"]
            if part == "run" and still:
                note = f"  ({still} still recovering at the next crash)"
            print(
                f"  {kind:<15} {part:<4} n={s['n']:<4} p50 {_s(s['p50'])}  p99 {_s(s['p99'])}"
                f"  max {_s(s['max'])}{note}"
            )
    print("crashes:")
    for crash in result["crashes"]:
        extra = f" down {crash['down_seconds']:.2f} s" if "down_seconds" in crash else ""
        who = f" {crash.get('worker', '')}" if crash["kind"] == "worker_kill" else ""
        print(
            f"  +{crash['t']:6.2f} s {crash['kind']}{who}{extra}: {crash['running']} running, "
            f"{crash['in_flight_steps']} steps in flight, {crash['lost_workflow_tasks']} workflow "
            f"tasks lost, {crash['affected_runs']} runs hit"
        )


# -- the run ------------------------------------------------------------------------------------


async def count_running(client: Client, ids: Iterable[str], concurrency: int = 32) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def running(execution_id: str) -> bool:
        async with gate:
            description = await client.get_workflow_handle(execution_id).describe()
            return description.status == WorkflowExecutionStatus.RUNNING

    return sum(await asyncio.gather(*(running(i) for i in ids)))


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        if args.seed is None:
            args.seed = random.randrange(1 << 30)  # recorded, so a run can be repeated
        self.args = args
        self.random = random.Random(args.seed)
        self.directory = Path(tempfile.mkdtemp(prefix="chaos-"))
        self.task_queue = f"chaos-{secrets.token_hex(4)}"
        self.api_key = secrets.token_urlsafe(24)
        self.server_log = (self.directory / "temporal.log").open("ab")
        self.server = DevServer(
            db_file=self.directory / "temporal.db", headless=True, log=self.server_log
        )
        self.s3: contextlib.ExitStack | None = None
        storage: dict[str, Any] = {}
        if args.storage == "s3":
            self.s3 = contextlib.ExitStack()
            endpoint = self.s3.enter_context(moto_subprocess(self.directory / "moto.out"))
            storage = {"storage_url": f"s3://{new_bucket(endpoint)}/chaos"}
            storage["s3_endpoint_url"] = endpoint
        self.settings = load_settings(
            temporal_address=self.server.address,
            temporal_task_queue=self.task_queue,
            workflow_log_dir=self.directory / "logs",
            workflow_definitions_dir=self.directory / "definitions",
            payload_store_dir=self.directory / "payloads",
            **storage,
        )
        self.sink = Sink(REPLY_DELAYS)
        self.slots = [WorkerSlot(i, self.settings, self.directory) for i in range(args.workers)]
        self.api: Process | None = None
        self.api_port = free_port()
        self.client: Client | None = None
        self.crashes: list[dict[str, Any]] = []
        self.started: dict[int, str] = {}
        self.t0 = 0.0

    async def start(self) -> None:
        say(f"working directory {self.directory}, seed {self.args.seed}")
        say(f"logs and large values in {open_stores(self.settings).logs.location}")
        self.server.start()
        await self.server.wait_ready()
        self.client = await connect_when_ready(self.settings, within=60.0)
        self.sink.start()
        keys = [{"key": self.api_key, "name": "chaos", "role": "admin", "workflows": "*"}]
        env = base_env(
            self.settings,
            API_KEYS=json.dumps(keys),
            API_RATE_LIMIT_PER_MINUTE="1000000",
            API_RATE_LIMIT_BURST="100000",
        )
        argv = [sys.executable, "-m", "uvicorn", "--factory", "api.server.main:create_app"]
        argv += ["--host", "127.0.0.1", "--port", str(self.api_port), "--log-level", "warning"]
        self.api = Process("api", argv, env, self.directory / "api.out")
        workers = [slot.start() for slot in self.slots]
        await asyncio.gather(*(w.wait_for_line(READY_LINE) for w in workers))
        async with httpx.AsyncClient(base_url=self.api_url, timeout=5) as http:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline or not self.api.alive():
                    raise RuntimeError(f"API not ready:\n{self.api.text()[-3000:]}")
                await asyncio.sleep(0.2)
        say(f"server {self.server.address}, API {self.api_url}, {len(workers)} workers ready")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    async def crash_schedule(self) -> None:
        kinds = ["worker_kill"] * self.args.kills
        if self.args.restart:
            kinds.insert(len(kinds) // 2 + len(kinds) % 2, "server_restart")
        for index, kind in enumerate(kinds):
            await asyncio.sleep(max(0.0, self.t0 + self.args.interval * (index + 1) - time.time()))
            assert self.client is not None
            running = await count_running(self.client, list(self.started.values()))
            if kind == "worker_kill":
                await self.kill_worker(running)
            else:
                await self.restart_server(running)

    async def kill_worker(self, running: int) -> None:
        slot = self.random.choice(self.slots)
        assert slot.current is not None
        victim, agent = slot.current, slot.agent
        await slot.scrape()  # its counters die with it
        at = victim.kill()
        crash = {"kind": "worker_kill", "at": at, "t": at - self.t0, "running": running}
        crash |= {"worker": victim.name, "agent": agent, "pid": victim.pid}
        crash["identity"] = f"{victim.pid}@{socket.gethostname()}"  # Temporal's default
        self.crashes.append(crash)
        say(f"SIGKILL {victim.name} (pid {victim.pid}) with {running} runs running")
        replacement = slot.start()
        await replacement.wait_for_line(READY_LINE)
        crash["replacement_ready_seconds"] = time.time() - at
        say(f"started {replacement.name} ({crash['replacement_ready_seconds']:.1f} s)")

    async def restart_server(self, running: int) -> None:
        at = time.time()
        self.server.kill()
        say(f"SIGKILL the Temporal server with {running} runs running")
        await asyncio.sleep(self.args.down)
        self.server.start()
        await self.server.wait_ready()
        self.client = await connect_when_ready(self.settings, within=60.0)
        back = time.time()
        self.crashes.append(
            {
                "kind": "server_restart",
                "at": at,
                "t": at - self.t0,
                "running": running,
                "down_seconds": back - at,
            }
        )
        say(f"Temporal server back after {back - at:.2f} s")

    async def run(self) -> dict[str, Any]:
        await self.start()
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(base_url=self.api_url, timeout=30, headers=headers) as api:
            saved = await api.put(f"/api/workflows/{WORKFLOW_ID}", json=definition(self.sink.url))
            if saved.status_code not in (200, 201):
                raise RuntimeError(f"saving the definition: {saved.status_code} {saved.text}")
            self.t0 = time.time()
            say(f"starting {self.args.executions} executions through the API")
            chaos = asyncio.create_task(self.crash_schedule())
            start_errors = await start_executions(api, self.args.executions, self.started)
            say(f"{len(self.started)} started ({len(start_errors)} errors)")
            await chaos
        await self.wait_terminal()
        elapsed = time.time() - self.t0
        api_check = await self.ask_api(sorted(self.started.values())[:10])
        say("reading histories, logs and the ledger")
        assert self.client is not None
        gate = asyncio.Semaphore(16)

        async def read(execution_id: str) -> Execution:
            async with gate:
                assert self.client is not None
                return await read_execution(self.client, execution_id)

        ids = sorted(set(self.started.values()))
        executions = await asyncio.gather(*(read(i) for i in ids))
        stored = open_stores(self.settings).logs
        logs = dict(
            zip(
                ids,
                await asyncio.gather(*(asyncio.to_thread(read_log, stored, i) for i in ids)),
                strict=True,
            )
        )
        for slot in self.slots:
            await slot.scrape()  # the survivors' counters
        outputs = [
            Path(p["output"]).read_text(errors="replace")
            for slot in self.slots
            for p in slot.history
        ]
        result: dict[str, Any] = {
            "config": {
                "executions": self.args.executions,
                "kills": self.args.kills,
                "restart": self.args.restart,
                "interval": self.args.interval,
                "down": self.args.down,
                "workers": self.args.workers,
                "seed": self.args.seed,
                "storage": self.args.storage,
                "storage_location": open_stores(self.settings).logs.location,
                "reply_delays": REPLY_DELAYS,
                "task_queue": self.task_queue,
            },
            "started_at": datetime.fromtimestamp(self.t0, UTC).isoformat(),
            "elapsed_seconds": elapsed,
            "crashes": self.crashes,
            "api_after_chaos": api_check,
            "workers": [p for slot in self.slots for p in slot.history],
        }
        result["figures"] = figures(
            self.started,
            start_errors,
            list(executions),
            logs,
            self.sink.snapshot(),
            self.crashes,
            outputs,
        )
        result["figures"]["metrics"] = metrics_against_logs(result["workers"], logs)
        result["problems"] = verdict(result)
        return result

    async def ask_api(self, ids: list[str]) -> dict[str, Any]:
        """After everything: does the API (its Temporal client lived through the restart)
        report the same final status as the history?"""
        assert self.client is not None
        agree = 0
        headers = {"Authorization": f"Bearer {self.api_key}"}
        async with httpx.AsyncClient(base_url=self.api_url, timeout=30, headers=headers) as api:
            for execution_id in ids:
                answer = await api.get(f"/api/executions/{execution_id}")
                description = await self.client.get_workflow_handle(execution_id).describe()
                expected = (description.status.name if description.status else "").lower()
                if answer.status_code == 200 and answer.json()["status"] == expected:
                    agree += 1
        return {"asked": len(ids), "agree": agree}

    async def wait_terminal(self) -> None:
        deadline = time.monotonic() + self.args.timeout
        ids = list(self.started.values())
        last = -1
        while True:
            assert self.client is not None
            try:
                running = await count_running(self.client, ids)
            except RPCError as err:
                say(f"describe failed ({err.message}); retrying")
                await asyncio.sleep(1)
                continue
            if running != last:
                say(f"{running} of {len(ids)} still running")
                last = running
            if running == 0 or time.monotonic() > deadline:
                return
            await asyncio.sleep(1.0)

    def close(self) -> None:
        for slot in self.slots:
            if slot.current is not None:
                slot.current.stop()
        if self.api is not None:
            self.api.stop()
        self.sink.stop()
        self.server.stop()
        self.server_log.close()
        if self.s3 is not None:
            self.s3.close()
        if self.args.keep:
            say(f"kept {self.directory}")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)


def write_json(result: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--kills", type=int, default=3, help="worker SIGKILLs (each restarted)")
    parser.add_argument(
        "--restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="SIGKILL and restart the Temporal server once",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between crashes")
    parser.add_argument("--down", type=float, default=1.0, help="seconds the server stays down")
    parser.add_argument("--timeout", type=float, default=600.0, help="wait for terminal runs")
    parser.add_argument("--seed", type=int, default=None, help="which worker each kill hits")
    parser.add_argument(
        "--storage",
        choices=("file", "s3"),
        default="file",
        help="where logs and large values live: the working directory, or S3 on moto's server",
    )
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    chaos = Chaos(args)
    try:
        return await chaos.run()
    finally:
        chaos.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(_main(args))
    print_report(result)
    path = write_json(result, args.out)
    print(f"\nwritten: {path}")
    if result["problems"]:
        print("PROBLEMS: " + "; ".join(result["problems"]))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
