"""Definitions over HTTP: save (a new version per change), read, list, delete, validate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response, status

from api.server.auth import Action
from api.server.bodies import parse_json_body
from api.server.deps import CurrentKey, DefinitionServiceDep
from api.server.errors import ApiError
from api.server.schemas import (
    ErrorResponse,
    ValidationPublic,
    WorkflowListPublic,
    WorkflowPublic,
    WorkflowSaved,
)

router = APIRouter(prefix="/api/workflows", tags=["workflows"])

_DEFINITION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/WorkflowDefinitionDocument"},
                "example": {
                    "id": "hello",
                    "inputs": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "steps": [{"id": "greet", "type": "set", "values": {"text": "Hi {name}"}}],
                },
            }
        },
    }
}


async def _document(request: Request) -> Any:
    return parse_json_body(await request.body())


@router.post(
    "/validate",
    response_model=ValidationPublic,
    summary="Validate a definition without saving it",
    description="Always 200: `valid` and the list of problems, each with its JSON path.",
    openapi_extra=_DEFINITION_BODY,
)
async def validate_workflow(
    request: Request, key: CurrentKey, definitions: DefinitionServiceDep
) -> ValidationPublic:
    try:
        document = await _document(request)
    except ApiError as err:
        if err.errors[0]["code"] != "invalid_value":
            raise  # not JSON at all: nothing to validate
        # JSON a run could not hold (NaN, too deep, a lone surrogate): a problem of the document.
        return ValidationPublic(valid=False, errors=err.errors)  # type: ignore[arg-type]
    definition, problems = definitions.problems(document)
    # Crons are checked by Temporal (a scratch schedule each) only for keys that may save.
    if definition is not None and not problems and key.can(Action.MANAGE):
        problems = await definitions.schedule_problems(definition)
    return ValidationPublic(valid=not problems, errors=[p.as_dict() for p in problems])  # type: ignore[misc]


@router.put(
    "/{workflow_id}",
    response_model=WorkflowSaved,
    summary="Save a definition (a new version when the document changes)",
    description="201 when the workflow is new, 200 otherwise. `changed` is false when the "
    "document equals the latest version (no new version). Schedules follow the triggers.",
    responses={
        201: {"model": WorkflowSaved, "description": "Created"},
        403: {"model": ErrorResponse, "description": "The key's role cannot save definitions"},
        422: {"model": ErrorResponse, "description": "Every problem, with its JSON path"},
    },
    openapi_extra=_DEFINITION_BODY,
)
async def save_workflow(
    workflow_id: str,
    request: Request,
    response: Response,
    key: CurrentKey,
    definitions: DefinitionServiceDep,
) -> WorkflowSaved:
    saved = await definitions.save(workflow_id, await _document(request), key)
    response.status_code = status.HTTP_201_CREATED if saved.created else status.HTTP_200_OK
    return saved


@router.get("", response_model=WorkflowListPublic, summary="List definitions in the key's scope")
async def list_workflows(key: CurrentKey, definitions: DefinitionServiceDep) -> WorkflowListPublic:
    return WorkflowListPublic(workflows=await definitions.list(key))


@router.get(
    "/{workflow_id}",
    response_model=WorkflowPublic,
    summary="Read a definition (the latest, or ?version=N)",
    responses={404: {"model": ErrorResponse}},
)
async def get_workflow(
    workflow_id: str,
    key: CurrentKey,
    definitions: DefinitionServiceDep,
    version: int | None = Query(None, ge=1, description="A past version; default the latest."),
) -> WorkflowPublic:
    return await definitions.get(workflow_id, key, version)


@router.delete(
    "/{workflow_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a definition and its schedules (past versions stay readable)",
    responses={403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def delete_workflow(
    workflow_id: str, key: CurrentKey, definitions: DefinitionServiceDep
) -> Response:
    await definitions.delete(workflow_id, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
