"""Inspect and control executions: status, cancel, signals, the log."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query, Request, status
from pydantic import ValidationError

from api.server.deps import CurrentKey, ServiceDep, SettingsDep
from api.server.errors import ApiError, parse_json_body
from api.server.executions import STATUSES
from api.server.schemas import (
    AcceptedPublic,
    CancelCreate,
    ErrorResponse,
    ExecutionListPublic,
    ExecutionPublic,
    RerunCreate,
    RunPublic,
)
from api.server.status import status_request
from workflows.messages import CANCEL_SIGNAL

router = APIRouter(prefix="/api/executions", tags=["executions"])

_SIGNAL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No or unknown API key"},
    404: {"model": ErrorResponse, "description": "No such execution (in the key's scope)"},
}
_FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "The key's role cannot do this"}
}
_NOT_RUNNING: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The execution has already finished"}
}


@router.get(
    "",
    response_model=ExecutionListPublic,
    summary="List executions (newest first), filtered by workflow and status",
    responses={401: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def list_executions(
    key: CurrentKey,
    service: ServiceDep,
    workflow_id: str | None = Query(None, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    status: str | None = Query(None, description="running, completed, failed or cancelled"),
    page_size: int = Query(50, ge=1, le=500),
    page_token: str | None = Query(None, max_length=4096),
) -> ExecutionListPublic:
    if status is not None and status not in STATUSES:
        raise ApiError(
            422, "invalid_request", f"status must be one of {', '.join(STATUSES)}", "$.status"
        )
    return await service.list(key, workflow_id, status, page_size, page_token)


@router.get(
    "/{execution_id}",
    response_model=ExecutionPublic,
    summary="Status, current step, steps so far, variables and error",
    description="Values over 4 KiB are summarised (`summarised` names those variables), so "
    "polling a run costs its worker little; `?include=variables` answers them in full (with "
    "`variable=NAME`, repeated: only those), up to API_STATUS_MAX_BYTES in all, else 413.",
    responses={
        **_NOT_FOUND,
        413: {"model": ErrorResponse, "description": "The variables asked for are too large"},
    },
)
async def get_execution(
    execution_id: str,
    key: CurrentKey,
    service: ServiceDep,
    settings: SettingsDep,
    include: str | None = Query(None, description="`variables`: the values in full."),
    variable: list[str] | None = Query(
        None, description="Only these variables in full (implies include=variables)."
    ),
) -> ExecutionPublic:
    request = status_request(settings, include, variable)
    return await service.get(execution_id, key, request)


@router.post(
    "/{execution_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedPublic,
    summary="Cancel: the in-flight step stops and the log is finalised as cancelled",
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": CancelCreate.model_json_schema()}},
        }
    },
    responses={**_NOT_FOUND, **_FORBIDDEN, **_NOT_RUNNING},
)
async def cancel_execution(
    execution_id: str, request: Request, key: CurrentKey, service: ServiceDep
) -> AcceptedPublic:
    raw = await request.body()
    body = parse_json_body(raw) if raw.strip() else {}
    try:
        reason = CancelCreate.model_validate(body if body is not None else {}).reason
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = "$" + "".join(f".{p}" for p in first["loc"])
        raise ApiError(422, "invalid_request", first["msg"], where) from None
    return await service.cancel(execution_id, reason, key)


@router.post(
    "/{execution_id}/signals/{name}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedPublic,
    summary="Deliver a signal (e.g. an approval for a wait_for_signal step)",
    description="The JSON body (optional) is the signal's payload; a `wait_for_signal` step "
    "binds it to its `output`. Signals sent before the step waits are kept until it does.",
    responses={**_NOT_FOUND, **_FORBIDDEN, **_NOT_RUNNING, 422: {"model": ErrorResponse}},
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {}, "example": {"approved": True}}},
        }
    },
)
async def signal_execution(
    execution_id: str, name: str, request: Request, key: CurrentKey, service: ServiceDep
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
    payload = parse_json_body(raw) if raw.strip() else None
    return await service.signal(execution_id, name, payload, key)


@router.post(
    "/{execution_id}/rerun",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunPublic,
    summary="Rerun a finished execution, reusing the results it already paid for",
    description="A new execution of the same workflow (`version`: `same`, `latest` or a "
    "number) with the source's inputs or new `input_vars`. Every `ai`, `http` and "
    "`sub_workflow` step before `from_step` (default: the step that failed or was cancelled) "
    "whose rendered request equals one the source completed takes the recorded result with "
    "no call; everything else runs fresh. 409 while the source runs; 422 for an unknown step.",
    responses={
        **_NOT_FOUND,
        **_FORBIDDEN,
        409: {"model": ErrorResponse},
        422: {"model": ErrorResponse},
    },
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": RerunCreate.model_json_schema()}},
        }
    },
)
async def rerun_execution(
    execution_id: str, request: Request, key: CurrentKey, service: ServiceDep
) -> RunPublic:
    raw = await request.body()
    body = parse_json_body(raw) if raw.strip() else {}
    try:
        rerun = RerunCreate.model_validate(body if body is not None else {})
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = "$" + "".join(f".{p}" for p in first["loc"])
        raise ApiError(422, "invalid_request", first["msg"], where) from None
    return await service.rerun(execution_id, rerun, key)


@router.get(
    "/{execution_id}/log",
    summary="The execution log document (SPEC §4)",
    responses={
        200: {"description": "The log", "content": {"application/json": {}}},
        **_NOT_FOUND,
    },
)
async def get_execution_log(
    execution_id: str, key: CurrentKey, service: ServiceDep
) -> dict[str, Any]:
    return await service.read_log(execution_id, key)
