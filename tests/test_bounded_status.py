"""Bounded status answers: a run holding several ~2 MB http results answers
`GET /api/executions/{id}` with summaries of its large values (small and fast, bounded in the
workflow query's own result), the full values with `?include=variables`, and viewers polling
it do not slow other runs. Against the real stack: Temporal dev server, worker, uvicorn."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.runtime.settings import Settings
from tests.conftest import ADMIN_KEY, eventually, serve_api
from tests.fakes import HttpSink, Reply

ROOT = Path(__file__).resolve().parent.parent
WFE = Path(sys.executable).parent / "wfe"
RESULTS = 4
ITEMS = 14_000  # ~2 MB of JSON per result
SMALL_ANSWER = 64 * 1024
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def big_body() -> dict[str, Any]:
    return {"items": [{"id": i, "text": "x" * 130} for i in range(ITEMS)], "total": ITEMS}


def holder(sink: HttpSink) -> dict[str, Any]:
    """Several large results, one small one, then a wait (the run stays running)."""
    steps: list[dict[str, Any]] = [
        {"id": f"fetch{i}", "type": "http", "url": f"{sink.url}/big", "output": f"r{i}"}
        for i in range(RESULTS)
    ]
    steps += [
        {"id": "note", "type": "set", "values": {"small": "kept as is"}},
        {"id": "hold", "type": "wait_for_signal", "signal": "go", "output": "go"},
    ]
    return {"id": "status-holder", "steps": steps}


TRIVIAL = {
    "id": "status-trivial",
    "steps": [
        {"id": "a", "type": "set", "values": {"x": 1}},
        {"id": "b", "type": "set", "compute": {"y": "x + 1"}},
        {"id": "c", "type": "set", "values": {"z": "{y}"}},
    ],
}


async def wfe(api_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "WFE_API_URL": api_url, "WFE_API_KEY": ADMIN_KEY, "NO_COLOR": "1"}
    env["PYTHONPATH"] = str(ROOT)
    process = await asyncio.create_subprocess_exec(
        str(WFE), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def timed_run(http: httpx.AsyncClient) -> float:
    began = time.perf_counter()
    answer = await http.post(
        "/api/workflows/run",
        params={"wait": "true", "timeout": "60"},
        json={"workflow_id": TRIVIAL["id"], "input_vars": {}},
    )
    assert answer.status_code == 200 and answer.json()["status"] == "completed", answer.text
    return time.perf_counter() - began


async def start_holder(http: httpx.AsyncClient, sink: HttpSink) -> str:
    body = json.dumps(big_body())
    sink.script("/big", *[Reply(200, body, {"Content-Type": "application/json"})] * RESULTS)
    document = holder(sink)
    assert (await http.put(f"/api/workflows/{document['id']}", json=document)).status_code == 201
    run = await http.post("/api/workflows/run", json={"workflow_id": document["id"]})
    assert run.status_code == 202, run.text
    execution_id = str(run.json()["execution_id"])

    async def waiting() -> bool:
        state = (await http.get(f"/api/executions/{execution_id}")).json()
        return state.get("waiting_for") == "go"

    await eventually(waiting, timeout=60, interval=0.5)
    return execution_id


async def check_the_default_answer(http: httpx.AsyncClient, path: str) -> None:
    """Small and fast: large values are summaries naming their type, size and first keys."""
    sizes, times = [], []
    for _ in range(3):
        began = time.perf_counter()
        answer = await http.get(path)
        times.append(time.perf_counter() - began)
        assert answer.status_code == 200, answer.text[:500]
        sizes.append(len(answer.content))
    state = answer.json()
    print(f"\ndefault status answer: {max(sizes):,} bytes, {statistics.median(times):.3f}s")
    assert max(sizes) < SMALL_ANSWER, max(sizes)
    assert statistics.median(times) < 1.0, times
    summary = state["outputs"]["r0"]
    assert summary["status"] == 200  # the http result's small fields are kept
    json_summary = summary["json"]["$summary"]
    assert json_summary["type"] == "object" and json_summary["bytes"] > 1_000_000
    assert json_summary["keys"] == ["items", "total"]
    assert state["outputs"]["small"] == "kept as is"
    assert sorted(state["summarised"]) == [f"r{i}" for i in range(RESULTS)]
    # The step records' outputs too.
    fetched = next(s for s in state["steps"] if s["step_id"] == "fetch0")
    assert "$summary" in fetched["output_vars"]["r0"]["json"]


async def check_the_full_answer(http: httpx.AsyncClient, path: str) -> None:
    began = time.perf_counter()
    full = await http.get(path, params={"include": "variables"})
    full_time = time.perf_counter() - began
    assert full.status_code == 200, full.text[:500]
    print(f"?include=variables: {len(full.content):,} bytes, {full_time:.3f}s")
    values = full.json()["outputs"]
    for i in range(RESULTS):
        assert values[f"r{i}"]["json"] == big_body()
    assert full.json()["summarised"] == []
    one = await http.get(path, params={"include": "variables", "variable": "r1"})
    assert one.json()["outputs"]["r1"]["json"]["total"] == ITEMS
    assert "$summary" in one.json()["outputs"]["r2"]["json"]


async def check_pollers_slow_no_run(http: httpx.AsyncClient, path: str) -> None:
    """Four viewers polling the large run as fast as they can; another run is timed."""
    assert (await http.put(f"/api/workflows/{TRIVIAL['id']}", json=TRIVIAL)).status_code == 201
    await timed_run(http)  # warm
    alone = statistics.median([await timed_run(http) for _ in range(3)])
    stop = asyncio.Event()
    polls = 0

    async def poller() -> None:
        nonlocal polls
        while not stop.is_set():
            assert (await http.get(path)).status_code == 200
            polls += 1

    pollers = [asyncio.create_task(poller()) for _ in range(4)]
    await asyncio.sleep(0.5)
    try:
        watched = statistics.median([await timed_run(http) for _ in range(3)])
    finally:
        stop.set()
        await asyncio.gather(*pollers)
    print(f"trivial run alone {alone:.3f}s; with 4 pollers {watched:.3f}s ({polls} polls)")
    assert watched < max(alone * 4, alone + 1.0), (alone, watched)


async def check_the_finished_answer(http: httpx.AsyncClient, path: str) -> None:
    """From the run's result, summarised the same way; kept after the first poll."""
    assert (await http.post(f"{path}/signals/go", json={"ok": True})).status_code == 202

    async def completed() -> dict[str, Any] | None:
        body = (await http.get(path)).json()
        return body if body["status"] == "completed" else None

    done = await eventually(completed, timeout=60, interval=0.5)
    took = []
    for _ in range(3):  # the first reads the run's result; the answer is then kept
        began = time.perf_counter()
        answer = await http.get(path)
        took.append(time.perf_counter() - began)
    print(
        f"completed run's status answer: {len(answer.content):,} bytes, "
        + ", ".join(f"{t:.3f}s" for t in took)
    )
    assert len(answer.content) < SMALL_ANSWER
    assert done["outputs"]["r3"]["json"]["$summary"]["bytes"] > 1_000_000
    full = await http.get(path, params={"include": "variables"})
    assert full.status_code == 200  # ~8 MB: under API_STATUS_MAX_BYTES (16 MiB)


async def check_wfe_status(http: httpx.AsyncClient, execution_id: str) -> None:
    """`wfe status` prints the outputs, summaries and all, and says how to see them whole."""
    code, out, err = await wfe(str(http.base_url), "status", execution_id)
    assert code == 0, err
    assert '"$summary"' in out and '"small": "kept as is"' in out
    assert f"wfe status {execution_id} --full" in out
    code, out, err = await wfe(str(http.base_url), "status", execution_id, "--full")
    assert code == 0, err
    assert '"$summary"' not in out and out.count('"total": 14000') == RESULTS


@pytest.mark.timeout(300)
async def test_the_status_answer_is_bounded_and_polling_it_slows_no_run(
    http: httpx.AsyncClient, sink: HttpSink
) -> None:
    execution_id = await start_holder(http, sink)
    path = f"/api/executions/{execution_id}"
    await check_the_default_answer(http, path)
    await check_the_full_answer(http, path)
    await check_pollers_slow_no_run(http, path)
    await check_the_finished_answer(http, path)
    await check_wfe_status(http, execution_id)


async def test_a_full_answer_past_the_limit_is_413(
    client: Any, settings: Settings, worker: Any, sink: HttpSink
) -> None:
    small = settings.model_copy(update={"api_status_max_bytes": 4 * 1024 * 1024})
    async with (
        serve_api(small, client) as url,
        httpx.AsyncClient(base_url=url, timeout=60, headers=ADMIN) as http,
    ):
        execution_id = await start_holder(http, sink)
        path = f"/api/executions/{execution_id}"
        answer = await http.get(path, params={"include": "variables"})
        assert answer.status_code == 413, answer.text[:300]
        (error,) = answer.json()["errors"]
        assert error["code"] == "status_too_large" and "API_STATUS_MAX_BYTES" in error["message"]
        one = await http.get(path, params={"variable": "r0"})  # one value fits
        assert one.status_code == 200 and one.json()["outputs"]["r0"]["json"] == big_body()
        assert (await http.post(f"{path}/signals/go", json={})).status_code == 202
        bad = await http.get(path, params={"include": "everything"})
        assert bad.status_code == 422
