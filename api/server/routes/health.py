"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.server.deps import StateDep
from api.server.schemas import HealthPublic, ReadyPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic, summary="Liveness: the process answers")
async def healthz() -> HealthPublic:
    return HealthPublic(status="ok")


@router.get(
    "/readyz",
    response_model=ReadyPublic,
    summary="Readiness: Temporal is reachable and a worker polls the task queue",
    description="200 when Temporal answers and a worker polled `TEMPORAL_TASK_QUEUE` (workflow "
    "and activity tasks) within `API_WORKER_POLL_WINDOW_SECONDS`; 503 naming the cause "
    "otherwise (`temporal`, or `worker`). Starts are still accepted without a worker; they "
    "answer a `no_worker` warning.",
    responses={
        503: {
            "model": ReadyPublic,
            "description": "Temporal is not reachable, or no worker polls the task queue",
        }
    },
)
async def readyz(state: StateDep) -> ReadyPublic | JSONResponse:
    queue = state.settings.temporal_task_queue
    client = state.client
    if client is not None:
        try:
            await asyncio.wait_for(client.service_client.check_health(), timeout=3)
        except Exception as err:
            reason = str(err) or type(err).__name__
        else:
            # Always asked afresh (a probe is rare); this also refreshes what starts read.
            report = await state.pollers.report(client, fresh=True)
            worker = report.readiness(state.pollers.window)
            if report.ready:
                return ReadyPublic(status="ready", temporal="ok", task_queue=queue, worker=worker)
            body = ReadyPublic(status="unavailable", temporal="ok", task_queue=queue, worker=worker)
            return JSONResponse(body.model_dump(), status_code=503)
    else:
        reason = state.connect_error or "not connected yet"
    body = ReadyPublic(status="unavailable", temporal=reason, task_queue=queue)
    return JSONResponse(body.model_dump(), status_code=503)
