"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import StateDep
from api.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic, summary="Liveness: the process answers")
async def healthz() -> HealthPublic:
    return HealthPublic(status="ok")


@router.get(
    "/readyz",
    response_model=HealthPublic,
    summary="Readiness: Temporal is reachable",
    responses={503: {"model": HealthPublic, "description": "Temporal is not reachable"}},
)
async def readyz(state: StateDep) -> HealthPublic | JSONResponse:
    client = state.client
    if client is not None:
        try:
            await asyncio.wait_for(client.service_client.check_health(), timeout=3)
            return HealthPublic(status="ready", temporal="ok")
        except Exception as err:
            reason = str(err) or type(err).__name__
    else:
        reason = state.connect_error or "not connected yet"
    body = HealthPublic(status="unavailable", temporal=reason)
    return JSONResponse(body.model_dump(), status_code=503)
