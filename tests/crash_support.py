"""Crash-test support: workers in subprocesses, a sink with hooks, and the three durability checks.

- :class:`WorkerProcess` runs ``python -m worker`` (the production entry point) with its
  settings in the environment, so a test can SIGKILL, SIGTERM or freeze it (SIGSTOP) at a
  chosen moment and start another one on the same task queue.
- :class:`CrashSink` is the tests' :class:`~tests.fakes.HttpSink` plus per-path hooks that run
  when a delivery has been recorded and before it is answered (e.g. to kill the worker after
  the side effect), and per-path responders computed from the request.
- The three checks after every fault test, each usable on its own:

  1. :func:`check_ledger` - the side-effect ledger: deliveries deduplicated by
     ``Idempotency-Key`` are exactly one effect per http step visit in the log, and no delivery
     belongs to anything else; raw deliveries (>= 1 per visit) show the retries.
  2. :func:`check_history` - ``fetch_history`` of every run of the execution: every scheduled
     activity completed at most once, no step visit scheduled again after it completed, no
     non-determinism, and the execution ended in a terminal state.
  3. :func:`check_log` - the execution log parses, is finished and terminal, its steps are
     contiguous, its activity steps are the history's scheduled activities in order, and it
     agrees with the workflow's own result.

:func:`check_executions` runs all three over a set of executions and returns the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from activities.runtime.settings import Settings
from bench.history import ACTIVITY_CLOSE, TERMINAL, event_time
from tests.fakes import HttpSink, Recorded, Reply
from workflows.steps import idempotency_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent
READY_LINE = "worker polling task queue"
ACTIVITY_STEP_TYPES = ("http", "ai")

# -- workers in subprocesses ------------------------------------------------------------------


def worker_env(settings: Settings, **overrides: str) -> dict[str, str]:
    """The environment of ``python -m worker`` for these settings.

    Inherited variables that name a setting are dropped first, so the developer's own
    ``TEMPORAL_ADDRESS`` or ``OPENROUTER_API_KEY`` never leaks into a test worker.
    """
    names = {name.upper() for name in Settings.model_fields}
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in names and not key.upper().startswith(settings.secret_env_prefix)
    }
    env.update(
        PYTHONUNBUFFERED="1",
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
        WORKFLOW_LOG_DIR=str(settings.workflow_log_dir),
        WORKFLOW_DEFINITIONS_DIR=str(settings.workflow_definitions_dir),
        STORAGE_URL=settings.storage_url,
        PAYLOAD_STORE_DIR=str(settings.payload_store_dir),
        HTTP_ALLOWED_HOSTS="127.0.0.1",
        WORKER_GRACEFUL_SHUTDOWN_SECONDS="10",
        WORKER_STICKY_TIMEOUT_SECONDS="3",  # a killed worker's runs move on within seconds
    )
    env.update(overrides)
    return env


def _die_with_parent() -> None:
    """In the child: SIGKILL it if the test process dies (a pytest-timeout exit, Ctrl-C), so
    no worker outlives the test run polling a server that is gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class WorkerProcess:
    """One ``python -m worker`` subprocess; stdout and stderr go to ``output``."""

    def __init__(self, env: dict[str, str], output: Path, name: str = "worker") -> None:
        self.env = env
        self.output = output
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None
        self._sink: Any = None

    def start(self) -> WorkerProcess:
        self._sink = self.output.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self._sink,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def identity_prefix(self) -> str:
        """Temporal's default worker identity is ``<pid>@<host>``."""
        return f"{self.pid}@"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def text(self) -> str:
        try:
            return self.output.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait_ready(self, within: float = 90.0) -> float:
        """Wait for the worker's "polling" line; returns the seconds it took."""
        started = time.monotonic()
        while READY_LINE not in self.text():
            if not self.alive():
                raise AssertionError(f"{self.name} exited before polling:\n{self.tail()}")
            if time.monotonic() - started > within:
                raise AssertionError(f"{self.name} not polling after {within}s:\n{self.tail()}")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def signal(self, signum: int) -> float:
        """Send ``signum``; returns the wall-clock time (comparable with history times)."""
        assert self.process is not None
        at = time.time()
        self.process.send_signal(signum)
        return at

    def kill(self) -> float:
        """SIGKILL, and reap the process; returns when the signal was sent (epoch seconds)."""
        at = self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(30)
        return at

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    async def wait_exit(self, within: float) -> int:
        assert self.process is not None
        deadline = time.monotonic() + within
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} still running after {within}s:\n{self.tail()}")
            await asyncio.sleep(0.02)
        return self.process.returncode

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)  # a frozen process cannot die of TERM
                self.process.kill()
            self.process.wait(30)
        if self._sink is not None:
            self._sink.close()
            self._sink = None


NONDETERMINISM_MARKERS = ("nondetermin", "non-determin", "NondeterminismError")


def nondeterminism_lines(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if any(marker.lower() in line.lower() for marker in NONDETERMINISM_MARKERS)
    ]


# -- the sink ---------------------------------------------------------------------------------

Hook = Callable[[Recorded], None]
Responder = Callable[[Recorded], Reply]


class CrashSink(HttpSink):
    """HttpSink plus hooks (run once a delivery is recorded, before it is answered) and
    responders (compute the reply from the request) per path."""

    def __init__(self) -> None:
        super().__init__()
        self.hooks: dict[str, Hook] = {}
        self.responders: dict[str, Responder] = {}
        report = self._httpd.handle_error

        def quiet(request: Any, client_address: Any) -> None:
            # A killed worker resets its keep-alive connections: expected here, not news.
            if not isinstance(sys.exc_info()[1], ConnectionError):
                report(request, client_address)

        self._httpd.handle_error = quiet  # type: ignore[method-assign]

    def _next_reply(self, record: Recorded) -> Reply:
        path = record.path.split("?")[0]
        hook = self.hooks.get(path)
        if hook is not None:
            hook(record)
        return super()._next_reply(record)

    def default_reply(self, record: Recorded) -> Reply:
        responder = self.responders.get(record.path.split("?")[0])
        return responder(record) if responder else super().default_reply(record)

    def once(self, path: str, hook: Hook) -> None:
        """Run ``hook`` on the first delivery to ``path`` only."""
        fired = threading.Event()

        def run(record: Recorded) -> None:
            if not fired.is_set():
                fired.set()
                hook(record)

        self.hooks[path] = run


def http_step(sink: HttpSink, step_id: str, **extra: Any) -> dict[str, Any]:
    """An http step whose body names its execution, so the ledger can be split per run."""
    return {
        "id": step_id,
        "type": "http",
        "method": "POST",
        "url": f"{sink.url}/{step_id}",
        "json": {"execution_id": "{execution.id}", "step": step_id},
        "retry": {"max_attempts": 5, "initial_interval_seconds": 0.2, "backoff_coefficient": 1.0},
        **extra,
    }


@dataclass(frozen=True)
class Delivery:
    """One request as the sink saw it: the ledger's row."""

    key: str
    execution_id: str | None
    path: str
    at: float


def deliveries_of(sink: HttpSink) -> list[Delivery]:
    rows = []
    for record in sink.deliveries():
        try:
            body = record.json()
        except ValueError:
            body = None
        execution_id = body.get("execution_id") if isinstance(body, dict) else None
        rows.append(
            Delivery(
                key=record.headers.get("idempotency-key", ""),
                execution_id=execution_id,
                path=record.path.split("?")[0],
                at=record.at,
            )
        )
    return rows


# -- check 1: the side-effect ledger ----------------------------------------------------------


@dataclass
class LedgerReport:
    effects: int  # distinct Idempotency-Keys: the effects a deduplicating receiver applies
    raw: int  # deliveries, retries included
    per_key: dict[str, int]

    @property
    def redelivered(self) -> dict[str, int]:
        return {key: count for key, count in self.per_key.items() if count > 1}


def expected_keys(log: dict[str, Any]) -> dict[str, str]:
    """Idempotency-Key -> step id for every http step visit in an execution log."""
    return {
        idempotency_key(log["execution_id"], step["step_id"], step["seq"]): step["step_id"]
        for step in log["steps"]
        if step.get("type") == "http"
    }


def check_ledger(deliveries: Iterable[Delivery], logs: dict[str, dict[str, Any]]) -> LedgerReport:
    """Per http step visit: exactly one effect after dedup by key, at least one delivery.

    ``logs`` maps execution id -> its log; deliveries of other executions are ignored.
    """
    rows = [d for d in deliveries if d.execution_id in logs]
    per_key = Counter(d.key for d in rows)
    problems = []
    for execution_id, log in logs.items():
        expected = expected_keys(log)
        seen = {d.key for d in rows if d.execution_id == execution_id}
        for key, step_id in expected.items():
            if per_key.get(key, 0) < 1:
                problems.append(f"{execution_id}: step {step_id!r} (key {key}) never delivered")
        for key in sorted(seen - set(expected)):
            paths = sorted({d.path for d in rows if d.key == key})
            problems.append(
                f"{execution_id}: delivery with key {key!r} to {paths} matches no step visit "
                "in the log (an extra effect)"
            )
    assert not problems, "ledger check failed:\n" + "\n".join(problems)
    return LedgerReport(effects=len(per_key), raw=sum(per_key.values()), per_key=dict(per_key))


# -- check 2: the history ---------------------------------------------------------------------


def _payload_json(payloads: Any) -> Any:
    try:
        return json.loads(payloads.payloads[0].data)
    except (IndexError, ValueError):
        return None


@dataclass
class ScheduledActivity:
    """One ActivityTaskScheduled event and what became of it."""

    run_id: str
    scheduled_event_id: int
    activity_type: str
    step_id: str | None
    key: str | None  # the http step's Idempotency-Key (its visit's identity)
    scheduled_at: float
    started_attempt: int | None = None  # the attempt that closed it (1 = no retry)
    started_identity: str | None = None
    outcome: str | None = None
    closed_at: float | None = None
    completions: int = 0


@dataclass
class HistoryFacts:
    execution_id: str
    run_ids: list[str]
    status: str | None  # terminal state, None while running (or continued and not closed)
    closed_at: float | None
    activities: list[ScheduledActivity]
    result: Any  # the completed run's ExecutionState (JSON), else None
    nondeterminism: list[str]
    workflow_task_failures: list[str]
    workflow_task_timeouts: int
    workflow_task_identities: list[tuple[float, str]]  # (started at, worker identity)
    event_count: int

    def reruns(self) -> list[ScheduledActivity]:
        """Activities scheduled for a step visit that had already completed."""
        completed: set[str] = set()
        again = []
        for activity in self.activities:
            if activity.key is None:
                continue
            if activity.key in completed:
                again.append(activity)
            if activity.outcome == "completed":
                completed.add(activity.key)
        return again

    def retried(self) -> list[ScheduledActivity]:
        return [a for a in self.activities if (a.started_attempt or 1) > 1]


def analyse_run(events: Iterable[HistoryEvent], run_id: str, facts: HistoryFacts) -> str | None:
    """Fold one run's events into ``facts``; returns the next run id if it continued as new."""
    scheduled: dict[int, ScheduledActivity] = {}
    next_run = None
    for event in events:
        facts.event_count += 1
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            request = _payload_json(attrs.input)
            request = request if isinstance(request, dict) else {}
            activity = ScheduledActivity(
                run_id=run_id,
                scheduled_event_id=event.event_id,
                activity_type=attrs.activity_type.name,
                step_id=request.get("step_id"),
                key=request.get("idempotency_key"),
                scheduled_at=event_time(event),
            )
            scheduled[event.event_id] = activity
            facts.activities.append(activity)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            activity = scheduled[attrs.scheduled_event_id]
            activity.started_attempt = attrs.attempt
            activity.started_identity = attrs.identity
        elif kind in ACTIVITY_CLOSE:
            outcome, name = ACTIVITY_CLOSE[kind]
            activity = scheduled[getattr(event, name).scheduled_event_id]
            if outcome == "completed":
                activity.completions += 1
            activity.outcome = outcome
            activity.closed_at = event_time(event)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            identity = event.workflow_task_started_event_attributes.identity
            facts.workflow_task_identities.append((event_time(event), identity))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            attrs = event.workflow_task_failed_event_attributes
            message = f"{WorkflowTaskFailedCause.Name(attrs.cause)}: {attrs.failure.message}"
            facts.workflow_task_failures.append(message)
            if (
                attrs.cause
                == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR
                or any(
                    marker.lower() in attrs.failure.message.lower()
                    for marker in NONDETERMINISM_MARKERS
                )
            ):
                facts.nondeterminism.append(message)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            facts.workflow_task_timeouts += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            next_run = (
                event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            )
        elif kind in TERMINAL:
            facts.status = TERMINAL[kind]
            facts.closed_at = event_time(event)
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                facts.result = _payload_json(
                    event.workflow_execution_completed_event_attributes.result
                )
    return next_run


async def fetch_facts(client: Client, execution_id: str) -> HistoryFacts:
    """Every run of the execution, from the first, following continue-as-new."""
    description = await client.get_workflow_handle(execution_id).describe()
    first = description.raw_description.workflow_execution_info.first_run_id or description.run_id
    facts = HistoryFacts(execution_id, [], None, None, [], None, [], [], 0, [], 0)
    run_id: str | None = first
    while run_id is not None and len(facts.run_ids) < 1000:
        facts.run_ids.append(run_id)
        history = await client.get_workflow_handle(execution_id, run_id=run_id).fetch_history()
        run_id = analyse_run(history.events, run_id, facts)
    return facts


def check_history(facts: HistoryFacts) -> None:
    problems = []
    if facts.status is None:
        problems.append("the execution is not in a terminal state")
    problems += [f"non-determinism: {message}" for message in facts.nondeterminism]
    for activity in facts.activities:
        if activity.completions > 1:
            problems.append(
                f"activity {activity.scheduled_event_id} ({activity.step_id}) completed "
                f"{activity.completions} times"
            )
    for activity in facts.reruns():
        problems.append(
            f"step {activity.step_id!r} (key {activity.key}) scheduled again at event "
            f"{activity.scheduled_event_id} after it had completed"
        )
    assert not problems, f"history check failed for {facts.execution_id}:\n" + "\n".join(problems)


# -- check 3: the execution log ---------------------------------------------------------------


def read_log(log_dir: Path, execution_id: str) -> dict[str, Any]:
    path = log_dir / f"{execution_id}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AssertionError(f"log of {execution_id} unreadable: {err}") from None


def check_log(log: dict[str, Any], facts: HistoryFacts) -> None:
    """The log is finished, contiguous, and tells the same story as the history."""
    problems = []
    execution_id = facts.execution_id
    if log.get("execution_id") != execution_id:
        problems.append(f"log names execution {log.get('execution_id')!r}")
    if log.get("status") != facts.status:
        problems.append(f"log status {log.get('status')!r}, history {facts.status!r}")
    if log.get("end_time") is None:
        problems.append("log has no end_time")
    steps = log.get("steps", [])
    seqs = [step.get("seq") for step in steps]
    if seqs != list(range(len(steps))):
        problems.append(f"step seqs are not contiguous from 0: {seqs}")
    for step in steps:
        if step.get("status") not in ("success", "failed", "cancelled") or not step.get("end_time"):
            problems.append(f"step {step.get('seq')} ({step.get('step_id')}) is not finished")
    logged = [s["step_id"] for s in steps if s.get("type") in ACTIVITY_STEP_TYPES]
    scheduled = [a.step_id for a in facts.activities]
    if logged != scheduled:
        problems.append(f"activity steps in the log {logged} != scheduled in history {scheduled}")
    for step, activity in zip(
        (s for s in steps if s.get("type") in ACTIVITY_STEP_TYPES), facts.activities, strict=False
    ):
        if (step["status"] == "success") != (activity.outcome == "completed"):
            problems.append(
                f"step {step['seq']} ({step['step_id']}) is {step['status']} in the log, "
                f"{activity.outcome} in history"
            )
    if isinstance(facts.result, dict):
        if facts.result.get("steps_total") != len(steps):
            problems.append(
                f"the run reports {facts.result.get('steps_total')} steps, the log {len(steps)}"
            )
        tail = facts.result.get("steps", [])
        ours = [(s["seq"], s["step_id"], s["status"]) for s in steps[-len(tail) :]] if tail else []
        theirs = [(s["seq"], s["step_id"], s["status"]) for s in tail]
        if ours != theirs:
            problems.append(f"log steps {ours} != the run's result {theirs}")
    assert not problems, f"log check failed for {execution_id}:\n" + "\n".join(problems)


# -- all three --------------------------------------------------------------------------------


@dataclass
class CheckReport:
    facts: dict[str, HistoryFacts]
    logs: dict[str, dict[str, Any]]
    ledger: LedgerReport
    figures: dict[str, Any] = field(default_factory=dict)


async def check_executions(
    client: Client,
    execution_ids: Iterable[str],
    log_dir: Path,
    deliveries: Iterable[Delivery],
    worker_output: str = "",
) -> CheckReport:
    """The three durability checks (side effects, history, logs) over finished executions; raises on any failure."""
    ids = list(execution_ids)
    facts = {i: await fetch_facts(client, i) for i in ids}
    for one in facts.values():
        check_history(one)
    logs = {i: read_log(log_dir, i) for i in ids}
    for i in ids:
        check_log(logs[i], facts[i])
    ledger = check_ledger(deliveries, logs)
    in_output = nondeterminism_lines(worker_output)
    assert not in_output, "non-determinism in worker output:\n" + "\n".join(in_output)
    figures = {
        "executions": len(ids),
        "statuses": dict(Counter(f.status for f in facts.values())),
        "effects": ledger.effects,
        "raw_deliveries": ledger.raw,
        "redelivered_keys": len(ledger.redelivered),
        "retried_activities": sum(len(f.retried()) for f in facts.values()),
        "reruns": sum(len(f.reruns()) for f in facts.values()),
        "workflow_task_timeouts": sum(f.workflow_task_timeouts for f in facts.values()),
        "workflow_task_failures": sum(len(f.workflow_task_failures) for f in facts.values()),
        "nondeterminism": sum(len(f.nondeterminism) for f in facts.values()) + len(in_output),
        "logs_complete": len(logs),
    }
    return CheckReport(facts=facts, logs=logs, ledger=ledger, figures=figures)


async def timeline(client: Client, execution_id: str, origin: float) -> list[str]:
    """The execution's events with times relative to ``origin`` (a crash), for failures."""
    lines = []
    description = await client.get_workflow_handle(execution_id).describe()
    first = description.raw_description.workflow_execution_info.first_run_id or description.run_id
    run_id: str | None = first
    while run_id is not None:
        history = await client.get_workflow_handle(execution_id, run_id=run_id).fetch_history()
        run_id = None
        for event in history.events:
            name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
            lines.append(f"{event_time(event) - origin:9.3f}s  {event.event_id:4d} {name}")
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                attrs = event.workflow_execution_continued_as_new_event_attributes
                run_id = attrs.new_execution_run_id
    return lines
