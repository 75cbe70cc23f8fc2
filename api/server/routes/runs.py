"""POST /api/workflows/run: start an execution (JSON or form-encoded)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from pydantic import ValidationError

from api.server.deps import CurrentKey, ServiceDep, SettingsDep
from api.server.errors import ApiError, parse_json_body
from api.server.metrics import api_metrics
from api.server.schemas import ErrorResponse, RunCreate, RunPublic
from api.server.status import status_request

router = APIRouter(prefix="/api/workflows", tags=["runs"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def parse_run_request(request: Request) -> RunCreate:
    """Read the body as JSON, or as a form whose `input_vars` field holds a JSON string."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: Any
    if content_type in _FORM_TYPES:
        form = await request.form()
        data = {k: v for k, v in form.items() if isinstance(v, str)}
        raw_inputs = data.get("input_vars")
        if raw_inputs is not None:
            data["input_vars"] = (
                parse_json_body(raw_inputs, "$.input_vars") if raw_inputs.strip() else {}
            )
    else:
        body = await request.body()
        if not body:
            raise ApiError(422, "invalid_request", "send a JSON body with workflow_id", "$")
        data = parse_json_body(body)
    try:
        return RunCreate.model_validate(data)
    except ValidationError as err:
        first, *rest = [
            {
                "code": "invalid_request",
                "message": e["msg"],
                "path": "$"
                + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]),
            }
            for e in err.errors(include_url=False)
        ]
        raise ApiError(422, first["code"], first["message"], first["path"], more=rest) from None


@router.post(
    "/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunPublic,
    summary="Start an execution",
    description="Starts the saved workflow `workflow_id` with `input_vars` and answers at once "
    "with the Temporal workflow ID (`execution_id`) and run ID. Accepts JSON or a form with "
    "`input_vars` as a JSON string.\n\n"
    "`Idempotency-Key`: the same key and body always answer the same execution (even when "
    "sent concurrently); the same key with another body is 409.\n\n"
    "`?wait=true&timeout=N`: wait up to N seconds and answer 200 with the finished execution "
    "(status, outputs, error), or 202 with the ids if it is still running. Outputs over 4 KiB "
    "are summarised as in the status answer unless `include=variables`.",
    responses={
        200: {"model": RunPublic, "description": "Finished (with ?wait=true)"},
        401: {"model": ErrorResponse, "description": "No or unknown API key"},
        403: {"model": ErrorResponse, "description": "The key's role cannot run workflows"},
        404: {"model": ErrorResponse, "description": "No such workflow (in the key's scope)"},
        409: {"model": ErrorResponse, "description": "Idempotency-Key reused with another body"},
        413: {"model": ErrorResponse, "description": "Body or input_vars too large"},
        422: {"model": ErrorResponse, "description": "input_vars do not match `inputs`"},
        429: {"model": ErrorResponse, "description": "Rate limit; see Retry-After"},
        503: {"model": ErrorResponse, "description": "Temporal is unreachable"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": RunCreate.model_json_schema()},
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["workflow_id"],
                        "properties": {
                            "workflow_id": {"type": "string"},
                            "input_vars": {"type": "string", "description": "a JSON object"},
                        },
                    }
                },
            },
        }
    },
)
async def run_workflow(
    request: Request,
    response: Response,
    key: CurrentKey,
    service: ServiceDep,
    settings: SettingsDep,
    idempotency_key: str | None = Header(
        None, alias="Idempotency-Key", min_length=1, max_length=200
    ),
    wait: bool = Query(False, description="Wait for the execution to finish."),
    timeout: float = Query(
        30.0, gt=0, description="Seconds to wait (capped by API_MAX_WAIT_SECONDS)."
    ),
    include: str | None = Query(
        None, description="With wait: `variables` answers the outputs in full (else summarised)."
    ),
) -> RunPublic:
    run = await parse_run_request(request)
    view = status_request(settings, include, None)  # a bad value is refused before starting
    started = await service.start(
        str(run.workflow_id), run.input_vars, key, idempotency_key=idempotency_key
    )
    # Counted per answered start (an Idempotency-Key repeat answers its execution again).
    api_metrics(request).started(str(run.workflow_id), "api")
    if not wait:
        return started
    finished = await service.wait(started, min(timeout, settings.api_max_wait_seconds), key, view)
    if finished is None:
        return started
    response.status_code = status.HTTP_200_OK
    return started.model_copy(
        update={"status": finished.status, "outputs": finished.outputs, "error": finished.error}
    )
