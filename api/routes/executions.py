"""Inspect and control executions: status, cancel, signals, the log."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request, status

from api.deps import ServiceDep
from api.errors import ApiError
from api.schemas import AcceptedPublic, CancelCreate, ErrorResponse, ExecutionPublic
from workflows.shared import CANCEL_SIGNAL

router = APIRouter(prefix="/api/executions", tags=["executions"])

_SIGNAL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such execution"}
}
_NOT_RUNNING: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The execution has already finished"}
}


@router.get(
    "/{execution_id}",
    response_model=ExecutionPublic,
    summary="Status, current step, steps so far, variables and error",
    responses=_NOT_FOUND,
)
async def get_execution(execution_id: str, service: ServiceDep) -> ExecutionPublic:
    return await service.get(execution_id)


@router.post(
    "/{execution_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedPublic,
    summary="Cancel: the in-flight step stops and the log is finalised as cancelled",
    responses={**_NOT_FOUND, **_NOT_RUNNING},
)
async def cancel_execution(
    execution_id: str, service: ServiceDep, body: CancelCreate | None = None
) -> AcceptedPublic:
    reason = body.reason if body else CancelCreate().reason
    return await service.cancel(execution_id, reason, requested_by=None)


@router.post(
    "/{execution_id}/signals/{name}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedPublic,
    summary="Deliver a signal (e.g. an approval for a wait_for_signal step)",
    description="The JSON body (optional) is the signal's payload; a `wait_for_signal` step "
    "binds it to its `output`. Signals sent before the step waits are kept until it does.",
    responses={**_NOT_FOUND, **_NOT_RUNNING, 422: {"model": ErrorResponse}},
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {}, "example": {"approved": True}}},
        }
    },
)
async def signal_execution(
    execution_id: str, name: str, request: Request, service: ServiceDep
) -> AcceptedPublic:
    if not _SIGNAL_NAME.match(name):
        raise ApiError(
            422, "invalid_signal", "signal names use letters, digits, '_', '-', '.'", "$.name"
        )
    if name == CANCEL_SIGNAL:
        raise ApiError(
            422, "invalid_signal", "use POST /api/executions/{id}/cancel to cancel", "$.name"
        )
    raw = await request.body()
    try:
        payload = json.loads(raw) if raw.strip() else None
    except ValueError as err:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON: {err}", "$") from None
    return await service.signal(execution_id, name, payload)


@router.get(
    "/{execution_id}/log",
    summary="The execution log document (SPEC §4)",
    responses={
        200: {"description": "The log", "content": {"application/json": {}}},
        **_NOT_FOUND,
    },
)
async def get_execution_log(execution_id: str, service: ServiceDep) -> dict[str, Any]:
    return service.read_log(execution_id)
