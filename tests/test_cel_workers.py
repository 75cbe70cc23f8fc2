"""CEL gives the same answers on two worker processes and across a worker restart.

Each worker is ``python -m worker`` in its own process with its own PYTHONHASHSEED
(tests/crash_support.py). One run computes map-order-sensitive values on the first worker,
waits for a signal, and the first worker is killed; the second worker replays that run (the
`set` and `condition` steps are evaluated again, and a different answer would take another
path: a non-determinism error) and computes the same values again after the signal. A second
run does everything on the second worker. All answers must agree, and be in sorted key order.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from activities.runtime.settings import Settings
from tests.conftest import eventually, outcome, start_definition
from tests.crash_support import WorkerProcess, nondeterminism_lines, worker_env
from workflows.interpreter.patches import CEL_CONFORMANT as PATCH_CEL_CONFORMANT
from workflows.interpreter.patches import SETTLING
from workflows.messages import STATUS_QUERY, ExecutionState

pytestmark = pytest.mark.timeout(180)

MAP = {"kiwi": 3, "apple": 5, "fig": 1, "date": 4, "banana": 2, "cherry": 6, "elder": 7}
COMPUTE = {
    "keys": "m.map(k, k)",
    "big": "m.filter(k, m[k] > 2)",
    "pairs": "m.transformList(k, v, k + '=' + string(v))",
    "copy": "m",
    "built": "{'z': 1, 'y': 2, 'x': {'w': 3, 'v': 4}}",
}
DEFINITION = {
    "id": "cel-maps",
    "inputs": {"type": "object", "properties": {"m": {"type": "object"}}},
    "steps": [
        {"id": "first", "type": "set", "compute": COMPUTE},
        {
            "id": "route",
            "type": "condition",
            "branches": [{"when": "keys[0] == 'apple' && size('Zoë') == 3", "next": "hold"}],
            "default": "wrong",
        },
        {"id": "wrong", "type": "fail", "message": "the keys came in another order"},
        {"id": "hold", "type": "wait_for_signal", "signal": "go"},
        {
            "id": "again",
            "type": "set",
            "compute": {f"{name}_again": expression for name, expression in COMPUTE.items()},
        },
    ],
}

Spawn = Callable[[str, str], WorkerProcess]


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Spawn]:
    started: list[WorkerProcess] = []

    def spawn(name: str, seed: str) -> WorkerProcess:
        env = worker_env(settings, PYTHONHASHSEED=seed)
        process = WorkerProcess(env, tmp_path / f"{name}.out", name).start()
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.close()


def patches(history: WorkflowHistory) -> str:
    """The details of the patch markers a history records (they hold the patch ids)."""
    found = []
    for event in history.events:
        marker = event.marker_recorded_event_attributes
        if (
            event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and "patch" in marker.marker_name
        ):
            for payloads in marker.details.values():
                found += [p.data.decode(errors="replace") for p in payloads.payloads]
    return "\n".join(found)


async def _waiting(handle: WorkflowHandle[Any, Any]) -> None:
    async def waits() -> bool:
        state: ExecutionState = await handle.query(STATUS_QUERY, result_type=ExecutionState)
        return state.waiting_for == "go"

    await eventually(waits, timeout=60, interval=0.1)


async def test_the_same_answers_on_two_workers_and_across_a_restart(
    client: Client, settings: Settings, workers: Spawn
) -> None:
    first = workers("cel-first", "1")
    await first.wait_ready()
    restarted = await start_definition(client, settings, DEFINITION, {"m": MAP})
    await _waiting(restarted)
    first.kill()

    second = workers("cel-second", "2")
    await second.wait_ready()
    await restarted.signal("go", {})  # the second worker replays the run, then goes on
    fresh = await start_definition(client, settings, DEFINITION, {"m": MAP})
    await _waiting(fresh)
    await fresh.signal("go", {})

    answers = []
    for handle in (restarted, fresh):
        state = await outcome(handle, timeout=90)
        assert state["status"] == "completed", state["error"]
        answers.append(state["outputs"])
        history = await handle.fetch_history()
        # The run uses the conformant evaluator: its own marker, or the newest one, which
        # settles every older behaviour (workflows/versions.py).
        assert PATCH_CEL_CONFORMANT in patches(history) or SETTLING[0] in patches(history)
    assert nondeterminism_lines(second.text()) == []
    outputs = answers[0]
    assert outputs["keys"] == sorted(MAP)
    assert outputs["big"] == sorted(k for k, v in MAP.items() if v > 2)
    assert outputs["pairs"] == [f"{k}={MAP[k]}" for k in sorted(MAP)]
    assert list(outputs["copy"]) == sorted(MAP)
    assert json.dumps(outputs["built"]) == '{"x": {"v": 4, "w": 3}, "y": 2, "z": 1}'
    for name in COMPUTE:  # the first worker's values, the second worker's after the restart
        assert json.dumps(outputs[f"{name}_again"]) == json.dumps(outputs[name])
    assert json.dumps(answers[1]) == json.dumps(answers[0])  # key order included
