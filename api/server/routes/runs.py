"""POST /api/workflows/run: start an execution (JSON or form-encoded)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Query, Request, Response, status

from api.server.bodies import parse_json_body, validated
from api.server.deps import CurrentKey, ReaderDep, SettingsDep, StarterDep
from api.server.errors import ApiError
from api.server.metrics import api_metrics
from api.server.routes.responses import Responses, errors
from api.server.schemas import RunCreate, RunPublic
from api.server.status import status_request

router = APIRouter(prefix="/api/workflows", tags=["runs"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_FINISHED: Responses = {200: {"model": RunPublic, "description": "Finished (with ?wait=true)"}}


async def run_request(request: Request) -> RunCreate:
    """The body as JSON, or as a form whose `input_vars` field holds a JSON string."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data: Any
    if content_type in _FORM_TYPES:
        form = await request.form()
        data = {k: v for k, v in form.items() if isinstance(v, str)}
        if "input_vars" in data:
            data["input_vars"] = parse_json_body(data["input_vars"], "$.input_vars", blank={})
    else:
        body = await request.body()
        if not body:
            raise ApiError(422, "invalid_request", "send a JSON body with workflow_id", "$")
        data = parse_json_body(body)
    return validated(RunCreate, data)


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
    responses=_FINISHED
    | errors(
        {
            401: "No or unknown API key",
            403: "The key's role cannot run workflows",
            404: "No such workflow (in the key's scope)",
            409: "Idempotency-Key reused with another body",
            413: "Body or input_vars too large",
            422: "input_vars do not match `inputs`",
            429: "Rate limit; see Retry-After",
            503: "Temporal is unreachable",
        }
    ),
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
    starter: StarterDep,
    reader: ReaderDep,
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
    # Read here, not as a dependency: FastAPI answers the query's and headers' problems first.
    run = await run_request(request)
    view = status_request(settings, include, None)  # a bad value is refused before starting
    started = await starter.start(
        str(run.workflow_id), run.input_vars, key, idempotency_key=idempotency_key
    )
    # Counted per answered start (an Idempotency-Key repeat answers its execution again).
    api_metrics(request).started(str(run.workflow_id), "api")
    if not wait or started.starts_at is not None:  # a debounced run has not started yet
        return started
    finished = await reader.wait(started, min(timeout, settings.api_max_wait_seconds), key, view)
    if finished is None:
        return started
    response.status_code = status.HTTP_200_OK
    return started.model_copy(
        update={"status": finished.status, "outputs": finished.outputs, "error": finished.error}
    )
