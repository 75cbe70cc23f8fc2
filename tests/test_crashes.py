"""Crash windows W1-W6 (each listed below), with the worker in a subprocess (``python -m worker``).

Each test crashes something at a chosen moment, lets the system recover, then runs the three
checks (side-effect ledger by Idempotency-Key, history, logs; see ``tests/crash_support.py``)
and reports its recovery time: from the crash to the in-flight step's completion (``step``)
and to the run's end (``run``), both measured against the server's event times.

- W1  SIGKILL while a step's HTTP request is in flight.
- W2  SIGKILL after the side effect (the sink answered) and before completion is reported:
      the worker is frozen (SIGSTOP) when the request arrives, answered, then killed.
- W3  SIGKILL while the worker holds a workflow task of a long run (checked with the worker
      frozen: the server shows the task started); another worker replays the whole history.
- W4  SIGTERM with a 1 s grace period during a 4 s step: the worker exits within the grace
      period, hanging up on the step, and another worker completes it.
- W5  Temporal server SIGKILL and restart on its SQLite file with four runs in flight.
- W6  the log directory unusable mid-run: the worker logs the error loudly, the steps that
      carry their records onward still run, the run cannot end until its log is written, and
      it completes with a complete log once the directory is back.

Recovery times are printed in a summary at the end of the module (and with ``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from activities.runtime.settings import Settings
from activities.runtime.temporal_client import connect_when_ready
from api.cli.devstack import DevServer
from tests.conftest import eventually, start_definition
from tests.crash_support import (
    CheckReport,
    CrashSink,
    Delivery,
    HistoryFacts,
    ScheduledActivity,
    WorkerProcess,
    check_executions,
    check_history,
    check_ledger,
    check_log,
    deliveries_of,
    http_step,
    nondeterminism_lines,
    timeline,
    worker_env,
)
from tests.fakes import Recorded, Reply
from workflows.steps import idempotency_key

pytestmark = pytest.mark.timeout(150)

RECOVERY = "crash recovery (crash -> in-flight step done / run done)"
_FIGURES: list[list[tuple[str, object]]] = [[]]  # the running test's user properties


@pytest.fixture(autouse=True)
def recovery_figures(request: pytest.FixtureRequest) -> None:
    """A test's recovery times go on its report: the suite prints them all at the end, also
    under -q and on several workers (tests/conftest.py, pytest_terminal_summary)."""
    _FIGURES[0] = request.node.user_properties


def record(window: str, **figures: Any) -> None:
    parts = [f"{k}={v:.2f}s" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()]
    line = f"{window}: " + " ".join(parts)
    _FIGURES[0].append((RECOVERY, line))
    print(line)


@pytest.fixture
def crash_sink() -> Iterator[CrashSink]:
    sink = CrashSink().start()
    yield sink
    sink.stop()


Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Spawn]:
    """Start worker subprocesses on the test's task queue; all are killed at teardown."""
    started: list[WorkerProcess] = []

    def spawn(name: str, settings_: Settings | None = None, **env: str) -> WorkerProcess:
        process = WorkerProcess(
            worker_env(settings_ or settings, **env), tmp_path / f"{name}.out", name
        )
        started.append(process.start())
        return process

    yield spawn
    for process in started:
        process.close()


def all_output(tmp_path: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(tmp_path.glob("*.out")))


async def finish(handle: WorkflowHandle[Any, Any], within: float = 90.0) -> None:
    """Wait for the run to end (completed, failed or cancelled alike)."""
    with contextlib.suppress(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), within)


async def checked(
    client: Client, settings: Settings, sink: CrashSink, tmp_path: Path, *ids: str, origin: float
) -> CheckReport:
    """The three checks; each execution's timeline (relative to the crash) is printed first,
    so a failure shows what happened when."""
    for execution_id in ids:
        print(f"--- {execution_id}, times relative to the crash")
        print("\n".join(await timeline(client, execution_id, origin)))
    return await check_executions(
        client, ids, settings.workflow_log_dir, deliveries_of(sink), all_output(tmp_path)
    )


def step_key(execution_id: str, log: dict[str, Any], step_id: str) -> str:
    (seq,) = [s["seq"] for s in log["steps"] if s["step_id"] == step_id]
    return idempotency_key(execution_id, step_id, seq)


# -- the checks themselves --------------------------------------------------------------------


def test_the_three_checks_catch_what_they_look_for() -> None:
    """The checks are not vacuous: each rejects the violation it exists for."""
    log = {
        "execution_id": "e1",
        "status": "completed",
        "end_time": "2026-01-01T00:00:01Z",
        "steps": [
            {"seq": 0, "step_id": "a", "type": "http", "status": "success", "end_time": "t"},
            {"seq": 1, "step_id": "b", "type": "set", "status": "success", "end_time": "t"},
        ],
    }
    key = idempotency_key("e1", "a", 0)
    retried = [Delivery(key, "e1", "/a", 0.0), Delivery(key, "e1", "/a", 1.0)]
    ledger = check_ledger(retried, {"e1": log})
    assert (ledger.effects, ledger.raw, ledger.redelivered) == (1, 2, {key: 2})
    rerun_effect = Delivery(idempotency_key("e1", "a", 7), "e1", "/a", 2.0)
    with pytest.raises(AssertionError, match="matches no step visit"):
        check_ledger([*retried, rerun_effect], {"e1": log})
    with pytest.raises(AssertionError, match="never delivered"):
        check_ledger([], {"e1": log})

    done = ScheduledActivity("r1", 5, "send_http_request", "a", key, 0.0)
    done.outcome, done.completions = "completed", 1
    facts = HistoryFacts("e1", ["r1"], "completed", 1.0, [done], None, [], [], 0, [], 20)
    check_history(facts)
    check_log(log, facts)
    again = dataclasses.replace(done, scheduled_event_id=11)
    with pytest.raises(AssertionError, match="scheduled again"):
        check_history(dataclasses.replace(facts, activities=[done, again]))
    with pytest.raises(AssertionError, match="completed 2 times"):
        check_history(
            dataclasses.replace(facts, activities=[dataclasses.replace(done, completions=2)])
        )
    with pytest.raises(AssertionError, match="not in a terminal state"):
        check_history(dataclasses.replace(facts, status=None))
    with pytest.raises(AssertionError, match="non-determinism"):
        check_history(dataclasses.replace(facts, nondeterminism=["NondeterminismError"]))

    with pytest.raises(AssertionError, match="not contiguous"):
        check_log({**log, "steps": log["steps"][1:]}, facts)
    with pytest.raises(AssertionError, match="scheduled in history"):
        check_log(log, dataclasses.replace(facts, activities=[done, again]))
    with pytest.raises(AssertionError, match="log status"):
        check_log({**log, "status": "running", "end_time": None}, facts)
    with pytest.raises(AssertionError, match="the run reports 3 steps"):
        check_log(log, dataclasses.replace(facts, result={"steps_total": 3, "steps": []}))


# -- W1 ---------------------------------------------------------------------------------------


async def test_w1_sigkill_during_a_steps_http_call(
    client: Client, settings: Settings, crash_sink: CrashSink, workers: Spawn, tmp_path: Path
) -> None:
    crash_sink.script("/charge", Reply(200, {"charged": True}, delay=3))
    document = {
        "id": "w1",
        "steps": [
            http_step(crash_sink, "before"),
            # Its heartbeat timeout (workflows.steps.heartbeat_timeout of 5 s) is how soon a
            # dead worker's attempt is retried.
            http_step(crash_sink, "charge", timeout_seconds=5),
            http_step(crash_sink, "after"),
        ],
    }
    first = workers("w1-first")
    await first.wait_ready()
    handle = await start_definition(client, settings, document)
    await eventually(lambda: crash_sink.deliveries("/charge"), timeout=60, interval=0.02)
    killed_at = first.kill()  # the sink is still holding the request (3 s delay)
    second = workers("w1-second")
    await second.wait_ready()
    await finish(handle)

    result = await checked(client, settings, crash_sink, tmp_path, handle.id, origin=killed_at)
    facts, log = result.facts[handle.id], result.logs[handle.id]
    assert facts.status == "completed"
    (charge,) = [a for a in facts.activities if a.step_id == "charge"]
    assert charge.outcome == "completed" and (charge.started_attempt or 0) >= 2
    assert charge.started_identity is not None
    assert charge.started_identity.startswith(second.identity_prefix)
    key = step_key(handle.id, log, "charge")
    assert result.ledger.per_key[key] >= 2  # raw: the killed attempt and the retry
    assert result.ledger.effects == 3  # deduplicated: one per step visit
    first_attempt = crash_sink.deliveries("/charge")[0]
    assert first_attempt in crash_sink.disconnects  # the kill cut the call before the reply
    assert charge.closed_at is not None and facts.closed_at is not None
    record(
        "W1 SIGKILL during HTTP call",
        step=charge.closed_at - killed_at,
        run=facts.closed_at - killed_at,
        deliveries=result.ledger.per_key[key],
    )


# -- W2 ---------------------------------------------------------------------------------------


async def test_w2_sigkill_after_the_side_effect_before_completion_is_reported(
    client: Client, settings: Settings, crash_sink: CrashSink, workers: Spawn, tmp_path: Path
) -> None:
    document = {
        "id": "w2",
        "steps": [
            # An output on the first step: validation's data-flow pass misses names bound
            # after a first step that binds none (see the report on workflows/validation.py).
            http_step(crash_sink, "before", output="before"),
            http_step(crash_sink, "charge", timeout_seconds=5, output="charged"),
            {"id": "note", "type": "set", "values": {"charged_ok": "{charged.json.ok}"}},
            http_step(crash_sink, "after"),
        ],
    }
    first = workers("w2-first")
    killed = threading.Event()
    killed_at: list[float] = []

    def freeze_then_kill(_: Recorded) -> None:
        # Freeze the worker before the sink answers: the side effect is done and the answer
        # reaches the worker's socket, but the worker never reads it. Then kill it.
        first.freeze()

        def kill() -> None:
            killed_at.append(first.kill())
            killed.set()

        threading.Timer(0.3, kill).start()

    crash_sink.once("/charge", freeze_then_kill)
    await first.wait_ready()
    handle = await start_definition(client, settings, document)
    await eventually(killed.is_set, timeout=60, interval=0.02)
    second = workers("w2-second")
    await second.wait_ready()
    await finish(handle)

    result = await checked(client, settings, crash_sink, tmp_path, handle.id, origin=killed_at[0])
    facts, log = result.facts[handle.id], result.logs[handle.id]
    assert facts.status == "completed"
    deliveries = crash_sink.deliveries("/charge")
    assert len(deliveries) == 2
    assert deliveries[0] not in crash_sink.disconnects  # the first attempt was answered
    keys = {d.headers["idempotency-key"] for d in deliveries}
    assert keys == {step_key(handle.id, log, "charge")}  # same key twice: one effect
    (charge,) = [a for a in facts.activities if a.step_id == "charge"]
    assert charge.started_attempt == 2 and charge.outcome == "completed"
    assert result.ledger.effects == 3
    assert log["steps"][2]["output_vars"] == {"charged_ok": True}
    assert charge.closed_at is not None and facts.closed_at is not None
    record(
        "W2 SIGKILL after side effect",
        step=charge.closed_at - killed_at[0],
        run=facts.closed_at - killed_at[0],
        deliveries=len(deliveries),
    )


# -- W3 ---------------------------------------------------------------------------------------

LOOPS = 40


def long_run(sink: CrashSink) -> dict[str, Any]:
    """40 loop iterations of condition + 4 sets + an http tick (the sink counts) + a set."""
    tick = http_step(sink, "tick", output="t")
    tick["json"] = {"execution_id": "{execution.id}", "step": "tick", "i": "{i}"}
    return {
        "id": "w3",
        "steps": [
            {"id": "init", "type": "set", "values": {"i": 0, "trail": []}},
            {"id": "check", "type": "condition",
             "branches": [{"when": f"i >= {LOOPS}", "next": "done"}]},
            {"id": "pad1", "type": "set", "values": {"a": "{i}", "b": "i={i}"}},
            {"id": "pad2", "type": "set", "values": {"c": {"nested": "{a}", "list": ["{b}"]}}},
            {"id": "route", "type": "condition",
             "branches": [{"when": "i % 2 == 0", "next": "even"}], "default": "odd"},
            {"id": "even", "type": "set", "values": {"parity": "even"}, "next": "tick"},
            {"id": "odd", "type": "set", "values": {"parity": "odd"}},
            tick,
            {"id": "inc", "type": "set", "values": {"i": "{t.json.i}"}, "next": "check"},
            http_step(sink, "done", json={"execution_id": "{execution.id}", "step": "done",
                                          "i": "{i}"}),
        ],
    }  # fmt: skip


async def kill_during_workflow_task(
    client: Client, handle: WorkflowHandle[Any, Any], worker: WorkerProcess, within: float = 60
) -> float:
    """SIGKILL ``worker`` while it holds a started workflow task of ``handle``'s run.

    The worker is frozen (SIGSTOP) while the server is asked; if no task is started it is
    thawed and asked again a moment later. Returns the kill time (epoch seconds).
    """
    deadline = time.monotonic() + within
    started = PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
    while time.monotonic() < deadline:
        worker.freeze()
        pending = (await handle.describe()).raw_description.pending_workflow_task
        if pending.state == started:
            # A completion already on the wire would land within a few ms: ask again.
            await asyncio.sleep(0.1)
            again = (await handle.describe()).raw_description.pending_workflow_task
            if again.state == started and again.started_time == pending.started_time:
                return worker.kill()
        worker.thaw()
        await asyncio.sleep(0.003)
    raise AssertionError("never caught the worker holding a workflow task")


async def test_w3_sigkill_during_a_long_runs_workflow_task_replays_elsewhere(
    client: Client, settings: Settings, crash_sink: CrashSink, workers: Spawn, tmp_path: Path
) -> None:
    crash_sink.responders["/tick"] = lambda r: Reply(200, {"i": r.json()["i"] + 1})
    first = workers("w3-first")
    await first.wait_ready()
    handle = await start_definition(client, settings, long_run(crash_sink))
    await eventually(lambda: len(crash_sink.deliveries("/tick")) >= 12, timeout=60, interval=0.02)
    killed_at = await kill_during_workflow_task(client, handle, first)
    ticks_before_kill = len(crash_sink.deliveries("/tick"))
    second = workers("w3-second")
    await second.wait_ready()
    await finish(handle)

    result = await checked(client, settings, crash_sink, tmp_path, handle.id, origin=killed_at)
    facts, log = result.facts[handle.id], result.logs[handle.id]
    assert facts.status == "completed"
    assert facts.result["outputs"]["i"] == LOOPS
    assert facts.workflow_task_timeouts >= 1  # the killed worker's task was lost...
    after = [who for at, who in facts.workflow_task_identities if at > killed_at]
    assert after and all(who.startswith(second.identity_prefix) for who in after)  # ...replayed
    assert facts.nondeterminism == [] and facts.workflow_task_failures == []
    assert nondeterminism_lines(second.text()) == []
    assert [a.step_id for a in facts.activities] == ["tick"] * LOOPS + ["done"]
    assert len(log["steps"]) == 1 + LOOPS * 7 + 1 + 1  # init, 40 x 7, the last check, done
    assert result.ledger.effects == LOOPS + 1
    assert facts.closed_at is not None
    record(
        "W3 SIGKILL during workflow task",
        run=facts.closed_at - killed_at,
        first_task_on_new_worker=(
            min(at for at, who in facts.workflow_task_identities if at > killed_at) - killed_at
        ),
        ticks_before_kill=ticks_before_kill,
        history_events=facts.event_count,
    )


# -- W4 ---------------------------------------------------------------------------------------


async def test_w4_sigterm_with_a_grace_period_shorter_than_the_step(
    client: Client, settings: Settings, crash_sink: CrashSink, workers: Spawn, tmp_path: Path
) -> None:
    grace = 1.0
    crash_sink.script("/slow", Reply(200, {"slow": True}, delay=4))
    document = {
        "id": "w4",
        "steps": [
            http_step(crash_sink, "before"),
            http_step(crash_sink, "slow", timeout_seconds=10),
            http_step(crash_sink, "after"),
        ],
    }
    first = workers("w4-first", WORKER_GRACEFUL_SHUTDOWN_SECONDS=str(grace))
    await first.wait_ready()
    handle = await start_definition(client, settings, document)
    await eventually(lambda: crash_sink.deliveries("/slow"), timeout=60, interval=0.02)
    termed_at = first.signal(15)  # SIGTERM
    code = await first.wait_exit(within=30)
    exited_after = time.time() - termed_at
    second = workers("w4-second")
    await second.wait_ready()
    await finish(handle)

    assert code == 0, first.tail()
    # Within about the grace period: well before the 4 s step would have answered.
    assert exited_after < grace + 2.5, f"exit took {exited_after:.2f}s"
    assert "stopping: finishing running activities" in first.text()
    assert crash_sink.deliveries("/slow")[0] in crash_sink.disconnects  # it hung up the step
    result = await checked(client, settings, crash_sink, tmp_path, handle.id, origin=termed_at)
    facts = result.facts[handle.id]
    assert facts.status == "completed"
    (slow,) = [a for a in facts.activities if a.step_id == "slow"]
    assert slow.outcome == "completed" and (slow.started_attempt or 0) >= 2
    assert result.ledger.effects == 3
    assert slow.closed_at is not None and facts.closed_at is not None
    record(
        "W4 SIGTERM, grace 1 s, 4 s step",
        exit=exited_after,
        step=slow.closed_at - termed_at,
        run=facts.closed_at - termed_at,
    )


# -- W5 ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def own_server(tmp_path: Path) -> AsyncIterator[DevServer]:
    """A Temporal dev server of the test's own: SQLite file in tmp_path, fixed ports."""
    log = (tmp_path / "temporal-w5.log").open("ab")
    try:
        async with DevServer(
            db_file=tmp_path / "w5.db", headless=True, log=log
        ).running() as server:
            yield server
    finally:
        log.close()


async def test_w5_temporal_server_restart_with_runs_in_flight(
    settings: Settings, crash_sink: CrashSink, workers: Spawn, tmp_path: Path
) -> None:
    crash_sink.script("/slow", Reply(200, {"slow": True}, delay=3))
    documents = {
        "timer": {"id": "w5-timer", "steps": [
            http_step(crash_sink, "t1"),
            {"id": "nap", "type": "delay", "seconds": 4},
            http_step(crash_sink, "t2"),
        ]},
        "http": {"id": "w5-http", "steps": [
            http_step(crash_sink, "h1"),
            http_step(crash_sink, "slow", timeout_seconds=8),
            http_step(crash_sink, "h2"),
        ]},
        "signal": {"id": "w5-signal", "steps": [
            http_step(crash_sink, "s1", output="s1"),  # an output first: as in W2
            {"id": "approval", "type": "wait_for_signal", "signal": "approval",
             "output": "approval"},
            http_step(crash_sink, "s2", json={"execution_id": "{execution.id}", "step": "s2",
                                              "by": "{approval.by}"}),
        ]},
        "mixed": {"id": "w5-mixed", "steps": [
            http_step(crash_sink, "m1"),
            {"id": "short", "type": "delay", "seconds": 1},
            {"id": "mark", "type": "set", "values": {"m": 1}},
            http_step(crash_sink, "m2"),
            {"id": "again", "type": "delay", "seconds": 2},
            http_step(crash_sink, "m3"),
        ]},
    }  # fmt: skip
    async with own_server(tmp_path) as server:
        own = settings.model_copy(update={"temporal_address": server.address})
        client = await connect_when_ready(own)
        worker = workers("w5-worker", own)
        await worker.wait_ready()
        handles = {
            name: await start_definition(client, own, document)
            for name, document in documents.items()
        }
        # In flight: a 4 s timer, a 3 s HTTP call, a wait for a signal, short timers.
        await eventually(
            lambda: crash_sink.deliveries("/slow") and crash_sink.deliveries("/s1"),
            timeout=60,
            interval=0.02,
        )
        assert crash_sink.deliveries("/t1")
        crashed_at = time.time()
        server.kill()
        await asyncio.sleep(1.0)  # down for a moment while the worker keeps working
        server.start()
        await server.wait_ready()
        back_at = time.time()
        client = await connect_when_ready(own)
        await eventually(
            lambda: _description_ok(client, handles["signal"].id), timeout=60, interval=0.2
        )
        await client.get_workflow_handle(handles["signal"].id).signal("approval", {"by": "ops"})
        for handle in handles.values():
            await finish(client.get_workflow_handle(handle.id), within=90)

        ids = [h.id for h in handles.values()]
        result = await check_executions(
            client, ids, own.workflow_log_dir, deliveries_of(crash_sink), all_output(tmp_path)
        )
        assert worker.alive()  # the worker rode out the outage
    assert set(result.figures["statuses"]) == {"completed"}, result.figures
    facts = result.facts
    assert result.logs[handles["signal"].id]["steps"][1]["output_vars"] == {
        "approval": {"by": "ops"}
    }
    assert result.ledger.effects == 2 + 3 + 2 + 3  # t1 t2, h1 slow h2, s1 s2, m1 m2 m3
    closed = [f.closed_at for f in facts.values() if f.closed_at is not None]
    assert len(closed) == 4 and min(closed) > crashed_at  # all four were in flight
    (slow,) = [a for a in facts[handles["http"].id].activities if a.step_id == "slow"]
    assert slow.closed_at is not None
    record(
        "W5 server SIGKILL + restart",
        down=back_at - crashed_at,
        step=slow.closed_at - crashed_at,
        all_runs=max(closed) - crashed_at,
        slow_deliveries=len(crash_sink.deliveries("/slow")),
    )


async def _description_ok(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
        return True
    except Exception:
        return False


# -- W6 ---------------------------------------------------------------------------------------


class LogDirOutage:
    """Makes the log directory unusable, then usable again.

    chmod 0o500 where it works; as root (where chmod stops nothing) the directory is moved
    aside and a regular file takes its place, so creating the log's temporary file fails.
    Either way the files already written are kept and come back.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.away = log_dir.with_name(log_dir.name + ".away")
        self.method = ""

    def begin(self) -> str:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.chmod(0o500)
        probe = self.log_dir / ".probe"
        try:
            probe.write_text("x")
        except PermissionError:
            self.method = "chmod 0o500"
            return self.method
        probe.unlink()
        self.log_dir.chmod(0o700)
        os.replace(self.log_dir, self.away)
        self.log_dir.write_text("not a directory: the log directory is unavailable\n")
        self.method = "directory replaced by a file"
        return self.method

    def end(self) -> None:
        if self.method == "chmod 0o500":
            self.log_dir.chmod(0o700)
        elif self.method:
            self.log_dir.unlink()
            os.replace(self.away, self.log_dir)
        self.method = ""


async def test_w6_unwritable_log_directory_stalls_loudly_and_recovers(
    client: Client, settings: Settings, crash_sink: CrashSink, workers: Spawn, tmp_path: Path
) -> None:
    crash_sink.script("/first", Reply(200, {"first": True}, delay=1))
    document = {
        "id": "w6",
        "steps": [
            http_step(crash_sink, "first"),
            {"id": "mid", "type": "set", "values": {"m": 1}},
            http_step(crash_sink, "second"),
            {"id": "last", "type": "set", "values": {"z": 2}},
        ],
    }
    worker = workers("w6-worker")
    await worker.wait_ready()
    handle = await start_definition(client, settings, document)
    await eventually(lambda: crash_sink.deliveries("/first"), timeout=60, interval=0.02)
    outage = LogDirOutage(settings.workflow_log_dir)
    method = outage.begin()
    try:
        loud = f"cannot write execution log for {handle.id}"
        await eventually(lambda: worker.text().count(loud) >= 3, timeout=60, interval=0.05)
        # 'second' carried the records before it and could not write them; it still ran,
        # but the run cannot end while its final log write keeps failing.
        await asyncio.sleep(1.0)
        assert len(crash_sink.deliveries("/second")) == 1
        description = await handle.describe()
        assert description.status is not None and description.status.name == "RUNNING"
        errors = [line for line in worker.text().splitlines() if loud in line]
        assert all(" ERROR " in line for line in errors), errors[:3]
    finally:
        restored_at = time.time()
        outage.end()
    await finish(handle)

    result = await checked(client, settings, crash_sink, tmp_path, handle.id, origin=restored_at)
    facts, log = result.facts[handle.id], result.logs[handle.id]
    assert facts.status == "completed"
    assert [s["step_id"] for s in log["steps"]] == ["first", "mid", "second", "last"]
    assert result.ledger.effects == 2 and result.ledger.raw == 2
    (second,) = [a for a in facts.activities if a.step_id == "second"]
    assert second.closed_at is not None and facts.closed_at is not None
    assert second.closed_at < restored_at  # the step did not wait for the log
    record(
        "W6 log dir unwritable",
        method=json.dumps(method),
        failed_writes=len(errors),
        run=facts.closed_at - restored_at,
    )
