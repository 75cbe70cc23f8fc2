"""A misconfigured or missing worker is loud: /readyz answers 503 naming the task
queue, a start answers 202 with a `no_worker` warning, and `wfe run` prints it on stderr.

Real dev server, real API (uvicorn) and a real worker started and stopped by the test; no
worker polls the fresh task queue of a test until the test starts one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from temporalio.client import Client

from activities.runtime.settings import Settings
from api.server.pollers import WorkerPollers
from tests.conftest import ADMIN_KEY, eventually, save_definition, serve_api
from tests.test_cli import QUICK, error_lines, execution_id_of, wfe
from worker import engine_worker

# Short enough to keep the stop test bounded, long enough that a worker that has just started
# (whose idle long polls are seconds old at most) counts as live throughout.
SHORT_WINDOW = 8.0


def no_worker_message(settings: Settings) -> str:
    return (
        f"no worker polls task queue '{settings.temporal_task_queue}' on namespace "
        f"'{settings.temporal_namespace}': the run waits until one does; start one with "
        "`python worker.py` (or check TEMPORAL_TASK_QUEUE)"
    )


async def start(api: httpx.AsyncClient, n: int) -> dict[str, Any]:
    response = await api.post(
        "/api/workflows/run", json={"workflow_id": "quick", "input_vars": {"n": n}}
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def session(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )


async def test_no_worker_readyz_503_start_warns_and_the_run_waits_for_one(
    client: Client, settings: Settings
) -> None:
    save_definition(settings, QUICK)
    queue = settings.temporal_task_queue
    async with serve_api(settings, client) as url, session(url) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert body["status"] == "unavailable" and body["temporal"] == "ok"
        assert body["task_queue"] == queue
        assert body["worker"].startswith(
            f"no worker polls task queue '{queue}' on namespace 'default' "
            f"(none polled in the last 90s): start one with `python worker.py`"
        ), body

        started = await start(api, 2)
        assert started["status"] == "running" and started["run_id"]
        # A 2xx answer's errors are warnings only; this one names queue and namespace.
        assert started["errors"] == [
            {"code": "no_worker", "message": no_worker_message(settings), "path": None}
        ]

        # The CLI says so on stderr instead of sitting silent, then times out (exit 2).
        waited = await wfe(url, "run", "quick", "-i", '{"n": 3}', "--wait", "--timeout", "3")
        assert waited.exit_code == 2, waited.output
        waited_id = execution_id_of(waited)
        lines = error_lines(waited)
        assert lines[0] == f"warning: no_worker: {no_worker_message(settings)}", lines
        assert lines[1].startswith("error: timed out after 3s") and waited_id in lines[1]

        quiet = await wfe(url, "run", "quick", "-i", '{"n": 4}', "-q")
        assert quiet.exit_code == 0, quiet.output
        quiet_id = quiet.stdout.strip()
        assert quiet.stdout == f"{quiet_id}\n"  # only the id on stdout; the warning on stderr
        assert error_lines(quiet) == [f"warning: no_worker: {no_worker_message(settings)}"]

        # "The run waits until one does": with a worker, all three complete.
        async with engine_worker(client, settings) as configured, configured:
            for execution_id, n in ((started["execution_id"], 2), (waited_id, 3), (quiet_id, 4)):
                handle = client.get_workflow_handle(execution_id)
                state = await asyncio.wait_for(handle.result(), 30)
                assert state["outputs"]["n2"] == n


async def test_with_a_worker_ready_and_no_warning_then_503_within_the_window_after_it_stops(
    client: Client, settings: Settings
) -> None:
    settings = settings.model_copy(update={"api_worker_poll_window_seconds": SHORT_WINDOW})
    save_definition(settings, QUICK)
    queue = settings.temporal_task_queue
    async with serve_api(settings, client) as url, session(url) as api:
        async with engine_worker(client, settings) as configured, configured:

            async def ready() -> httpx.Response | None:
                answer = await api.get("/readyz")
                return answer if answer.status_code == 200 else None

            # The worker's first polls reach Temporal within moments of its start.
            body = (await eventually(ready, timeout=5)).json()
            assert body == {
                "status": "ready",
                "temporal": "ok",
                "task_queue": queue,
                "worker": "ok",
            }
            started = await start(api, 5)
            assert started["errors"] == []
            result = await client.get_workflow_handle(started["execution_id"]).result()
            assert result["outputs"]["n2"] == 5
            waited = await wfe(url, "run", "quick", "-i", '{"n": 6}', "--wait")
            assert waited.exit_code == 0, waited.output
            assert waited.stderr == ""
        stopped_at = asyncio.get_running_loop().time()

        async def unready() -> httpx.Response | None:
            answer = await api.get("/readyz")
            return answer if answer.status_code == 503 else None

        # Temporal still lists the stopped worker's pollers (for 5 minutes); their last poll
        # ages past the window, and /readyz turns 503 naming the queue.
        gone = await eventually(unready, timeout=SHORT_WINDOW + 5, interval=0.5)
        took = asyncio.get_running_loop().time() - stopped_at
        assert took <= SHORT_WINDOW + 5
        assert f"no worker polls task queue '{queue}'" in gone.json()["worker"]
        assert f"none polled in the last {SHORT_WINDOW:g}s" in gone.json()["worker"]
        # /readyz refreshed what starts read: the next start warns at once.
        late = await start(api, 7)
        assert [item["code"] for item in late["errors"]] == ["no_worker"]
        async with engine_worker(client, settings) as configured, configured:
            await asyncio.wait_for(client.get_workflow_handle(late["execution_id"]).result(), 30)


async def test_the_check_is_cached_and_shared_not_one_rpc_per_start(
    client: Client, settings: Settings
) -> None:
    pollers = WorkerPollers(settings)
    assert pollers.fresh() is None
    # Concurrent callers share one check in flight...
    first, *others = await asyncio.gather(*(pollers.report(client) for _ in range(20)))
    assert all(report is first for report in others)
    assert first.missing == ("workflow", "activity") and first.warnings()
    # ...and later ones read the cached answer until it is a few seconds old.
    assert pollers.fresh() is first
    assert await pollers.report(client) is first
    # A fresh check (what /readyz asks for) replaces it.
    again = await pollers.report(client, fresh=True)
    assert again is not first and pollers.fresh() is again
