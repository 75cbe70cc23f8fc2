"""Inspect and control executions: status, cancel, signals, rerun, the log."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, status
from sse_starlette import EventSourceResponse

from api.server.bodies import OptionalBody, parse_json_body, request_body
from api.server.deps import (
    ClientDep,
    ControllerDep,
    CurrentKey,
    ListerDep,
    ReaderDep,
    RerunnerDep,
    SettingsDep,
)
from api.server.errors import ApiError
from api.server.executions import STATUSES
from api.server.executions.events import Cursor, RunEvents
from api.server.routes.responses import FORBIDDEN, NOT_FOUND, NOT_RUNNING, Responses, errors
from api.server.schemas import (
    AcceptedPublic,
    CancelCreate,
    ExecutionListPublic,
    ExecutionPublic,
    RerunCreate,
    RunPublic,
)
from api.server.status import status_request
from workflows.messages import CANCEL_SIGNAL

router = APIRouter(prefix="/api/executions", tags=["executions"])

_SIGNAL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CANCEL_BODY = OptionalBody(CancelCreate)
_RERUN_BODY = OptionalBody(RerunCreate)
_LOG: Responses = {200: {"description": "The log", "content": {"application/json": {}}}}


@router.get(
    "",
    response_model=ExecutionListPublic,
    summary="List executions (newest first), filtered by workflow and status",
    responses=errors({401: None, 422: None}),
)
async def list_executions(
    key: CurrentKey,
    executions: ListerDep,
    workflow_id: str | None = Query(None, pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    status: str | None = Query(None, description="running, completed, failed or cancelled"),
    page_size: int = Query(50, ge=1, le=500),
    page_token: str | None = Query(None, max_length=4096),
    include_tests: bool = Query(False, description="Test runs too (docs/testing.md)."),
) -> ExecutionListPublic:
    if status is not None and status not in STATUSES:
        raise ApiError(
            422, "invalid_request", f"status must be one of {', '.join(STATUSES)}", "$.status"
        )
    return await executions.list(key, workflow_id, status, page_size, page_token, include_tests)


@router.get(
    "/{execution_id}",
    response_model=ExecutionPublic,
    summary="Status, current step, steps so far, variables and error",
    description="Values over 4 KiB are summarised (`summarised` names those variables), so "
    "polling a run costs its worker little; `?include=variables` answers them in full (with "
    "`variable=NAME`, repeated: only those), up to API_STATUS_MAX_BYTES in all, else 413.",
    responses=NOT_FOUND | errors({413: "The variables asked for are too large"}),
)
async def get_execution(
    execution_id: str,
    key: CurrentKey,
    reader: ReaderDep,
    settings: SettingsDep,
    include: str | None = Query(None, description="`variables`: the values in full."),
    variable: list[str] | None = Query(
        None, description="Only these variables in full (implies include=variables)."
    ),
) -> ExecutionPublic:
    request = status_request(settings, include, variable)
    return await reader.get(execution_id, key, request)


@router.post(
    "/{execution_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedPublic,
    summary="Cancel: the in-flight step stops and the log is finalised as cancelled",
    openapi_extra=_CANCEL_BODY.openapi(),
    responses=NOT_FOUND | FORBIDDEN | NOT_RUNNING,
)
async def cancel_execution(
    execution_id: str,
    key: CurrentKey,
    control: ControllerDep,
    body: Annotated[CancelCreate, Depends(_CANCEL_BODY)],
) -> AcceptedPublic:
    return await control.cancel(execution_id, body.reason, key)


@router.post(
    "/{execution_id}/signals/{name}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedPublic,
    summary="Deliver a signal (e.g. an approval for a wait_for_signal step)",
    description="The JSON body (optional) is the signal's payload; a `wait_for_signal` step "
    "binds it to its `output`. Signals sent before the step waits are kept until it does.",
    responses=NOT_FOUND | FORBIDDEN | NOT_RUNNING | errors({422: None}),
    openapi_extra=request_body({}, required=False, example={"approved": True}),
)
async def signal_execution(
    execution_id: str, name: str, request: Request, key: CurrentKey, control: ControllerDep
) -> AcceptedPublic:
    if not _SIGNAL_NAME.match(name):
        raise ApiError(
            422, "invalid_signal", "signal names use letters, digits, '_', '-', '.'", "$.name"
        )
    if name == CANCEL_SIGNAL:
        raise ApiError(
            422, "invalid_signal", "use POST /api/executions/{id}/cancel to cancel", "$.name"
        )
    payload = parse_json_body(await request.body(), blank=None)
    return await control.signal(execution_id, name, payload, key)


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
    responses=NOT_FOUND | FORBIDDEN | errors({409: None, 422: None}),
    openapi_extra=_RERUN_BODY.openapi(),
)
async def rerun_execution(
    execution_id: str,
    key: CurrentKey,
    reruns: RerunnerDep,
    body: Annotated[RerunCreate, Depends(_RERUN_BODY)],
) -> RunPublic:
    return await reruns.rerun(execution_id, body, key)


@router.get(
    "/{execution_id}/log",
    summary="The execution log document: the run and every finished step's record",
    responses=_LOG | NOT_FOUND,
)
async def get_execution_log(
    execution_id: str, key: CurrentKey, reader: ReaderDep
) -> dict[str, Any]:
    return await reader.read_log(execution_id, key)


_EVENTS: Responses = {
    200: {"description": "Server-sent events", "content": {"text/event-stream": {}}}
}


@router.get(
    "/{execution_id}/events",
    summary="The run as server-sent events: step, delta (AI answers as written), waiting, end",
    description="`text/event-stream` (docs/streaming.md). Each event's `id` is a cursor: "
    "send it back as `Last-Event-ID` to resume without repeats. A client that connects late "
    "gets the current state first. Same scope as the status answer.",
    response_class=EventSourceResponse,
    responses=_EVENTS | NOT_FOUND,
)
async def get_execution_events(
    execution_id: str,
    key: CurrentKey,
    reader: ReaderDep,
    client: ClientDep,
    last_event_id: str | None = Header(None, max_length=4096),
) -> EventSourceResponse:
    await reader.describe(execution_id, key)  # 404 before the stream starts
    run = RunEvents(reader, client, execution_id, key, Cursor.parse(last_event_id))
    return EventSourceResponse(run.events(), ping=15)
