"""Definitions over HTTP: save (a new version per change), read, list, delete, validate."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response, status

from api.auth import Action, Principal
from api.deps import ClientDep, CurrentKey, SettingsDep, StateDep
from api.errors import ApiError, parse_json_body
from api.executions import input_problems, with_defaults
from api.library import library_for
from api.schemas import (
    ErrorResponse,
    ValidationPublic,
    WorkflowListPublic,
    WorkflowPublic,
    WorkflowSaved,
    WorkflowSummary,
)
from api.store import DefinitionNotFound, StoredDefinition, valid_workflow_id
from api.triggers import delete_schedules, sync_schedules
from workflows.definition import WorkflowDefinition
from workflows.errors import DefinitionError, Problem
from workflows.runtime.settings import Settings
from workflows.validation import check_definition

router = APIRouter(prefix="/api/workflows", tags=["workflows"])

RESERVED_IDS = frozenset({"run", "validate"})
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


def _problems(document: Any, settings: Settings) -> tuple[WorkflowDefinition | None, list[Problem]]:
    if isinstance(document, dict) and isinstance(document.get("steps"), list):
        count = len(document["steps"])
        if count > settings.definition_max_steps:
            return None, [
                Problem(
                    "$.steps",
                    f"{count} steps; the limit is {settings.definition_max_steps} "
                    "(DEFINITION_MAX_STEPS)",
                    code="too_many_steps",
                )
            ]
    definition, problems = check_definition(document)
    if definition is not None and not problems:
        for index, (_, trigger) in enumerate(definition.schedules()):
            inputs = with_defaults(definition.inputs, trigger.input_vars)
            for item in input_problems(
                definition.inputs, inputs, f"$.triggers[{index}].input_vars"
            ):
                problems.append(Problem(item["path"], item["message"], item["code"]))
    return definition, problems


def _require(key: Principal, action: Action, what: str) -> None:
    if not key.can(action):
        raise ApiError(403, "forbidden", f"role '{key.role}' cannot {what}")


def _visible(key: Principal, workflow_id: str) -> None:
    if not key.sees(workflow_id):
        raise ApiError(404, "workflow_not_found", f"no workflow named '{workflow_id}'")


@router.post(
    "/validate",
    response_model=ValidationPublic,
    summary="Validate a definition without saving it",
    description="Always 200: `valid` and the list of problems, each with its JSON path.",
    openapi_extra=_DEFINITION_BODY,
)
async def validate_workflow(
    request: Request, key: CurrentKey, settings: SettingsDep
) -> ValidationPublic:
    try:
        document = await _document(request)
    except ApiError as err:
        if err.errors[0]["code"] != "invalid_value":
            raise  # not JSON at all: nothing to validate
        # JSON a run could not hold (NaN, too deep, a lone surrogate): a problem of the document.
        return ValidationPublic(valid=False, errors=err.errors)  # type: ignore[arg-type]
    _, problems = _problems(document, settings)
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
    state: StateDep,
    client: ClientDep,
) -> WorkflowSaved:
    _visible(key, workflow_id)
    _require(key, Action.MANAGE, "save definitions")
    if not valid_workflow_id(workflow_id) or workflow_id in RESERVED_IDS:
        raise ApiError(
            422, "invalid_workflow_id",
            f"'{workflow_id}' cannot be a workflow id: use [A-Za-z0-9_-]{{1,64}}, not run/validate",
            "$.id",
        )  # fmt: skip
    document = await _document(request)
    if isinstance(document, dict):
        document.setdefault("id", int(workflow_id) if workflow_id.isdigit() else workflow_id)
    _, problems = _problems(document, state.settings)
    if problems:
        raise ApiError.from_problems(422, problems)
    try:
        saved = state.store.save(workflow_id, document)
    except DefinitionError as err:
        raise ApiError.from_problems(422, err.problems) from None
    schedules = []
    if saved.stored.definition.schedules():
        try:
            library = library_for(saved.stored.definition, state.store)
        except ApiError:
            library = {}  # a run then fails its sub_workflow step, naming the missing workflow
        schedules = await sync_schedules(client, state.settings, saved.stored, library)
    else:
        schedules = await sync_schedules(client, state.settings, saved.stored)
    response.status_code = status.HTTP_201_CREATED if saved.created else status.HTTP_200_OK
    stored = saved.stored
    return WorkflowSaved(
        workflow_id=stored.workflow_id,
        version=stored.version,
        hash=stored.hash,
        saved_at=stored.saved_at,
        created=saved.created,
        changed=saved.changed,
        schedules=schedules,
        webhook=f"/api/hooks/{workflow_id}" if stored.definition.webhook() else None,
    )


@router.get("", response_model=WorkflowListPublic, summary="List definitions in the key's scope")
async def list_workflows(key: CurrentKey, state: StateDep) -> WorkflowListPublic:
    return WorkflowListPublic(
        workflows=[_summary(s) for s in state.store.list_definitions() if key.sees(s.workflow_id)]
    )


def _summary(stored: StoredDefinition) -> WorkflowSummary:
    definition = stored.definition
    return WorkflowSummary(
        workflow_id=stored.workflow_id,
        name=definition.name,
        description=definition.description,
        version=stored.version,
        hash=stored.hash,
        saved_at=stored.saved_at,
        steps=len(definition.steps),
        triggers=[t.type for t in definition.triggers],
    )


@router.get(
    "/{workflow_id}",
    response_model=WorkflowPublic,
    summary="Read a definition (the latest, or ?version=N)",
    responses={404: {"model": ErrorResponse}},
)
async def get_workflow(
    workflow_id: str,
    key: CurrentKey,
    state: StateDep,
    version: int | None = Query(None, ge=1, description="A past version; default the latest."),
) -> WorkflowPublic:
    _visible(key, workflow_id)
    try:
        stored = state.store.get(workflow_id, version)
    except DefinitionNotFound as err:
        raise ApiError(404, "workflow_not_found", str(err)) from None
    except DefinitionError as err:
        raise ApiError.from_problems(422, err.problems) from None
    return WorkflowPublic(
        workflow_id=stored.workflow_id,
        version=stored.version,
        hash=stored.hash,
        saved_at=stored.saved_at,
        versions=state.store.versions(workflow_id),
        definition=stored.document,
    )


@router.delete(
    "/{workflow_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a definition and its schedules (past versions stay readable)",
    responses={403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
)
async def delete_workflow(
    workflow_id: str, key: CurrentKey, state: StateDep, client: ClientDep
) -> Response:
    _visible(key, workflow_id)
    _require(key, Action.MANAGE, "delete definitions")
    try:
        state.store.delete(workflow_id)
    except DefinitionNotFound as err:
        raise ApiError(404, "workflow_not_found", str(err)) from None
    await delete_schedules(client, workflow_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
