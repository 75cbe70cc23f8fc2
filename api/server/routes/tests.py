"""Test files over HTTP: run a workflow's cases with mocked steps and virtual time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from api.server.bodies import parse_json_body, request_body
from api.server.deps import ClientDep, CurrentKey, ReaderDep, StarterDep
from api.server.executions.common import temporal_status
from api.server.recording import final_state, recorded_case
from api.server.routes.responses import NOT_FOUND, errors
from api.server.schemas import TestReportPublic
from api.server.testing import Tester
from workflows.testfile import CaseFile

router = APIRouter()


async def get_tester(client: ClientDep, starter: StarterDep) -> Tester:
    return Tester(client, starter)


TesterDep = Annotated[Tester, Depends(get_tester)]


@router.post(
    "/api/workflows/{workflow_id}/test",
    response_model=TestReportPublic,
    summary="Run a test file's cases (mocked steps, virtual time)",
    description="Each case is a real run of the saved workflow on this deployment's Temporal, "
    "marked as a test: mocked steps never call out, delays and signal timeouts take virtual "
    "time, and the run stays out of the executions list (`?include_tests=true` shows it). "
    "200 with each case's result; 422 for a file that does not fit the schema, a mock naming "
    "no step of the workflow, or a mock result of the wrong shape (each with its JSON path).",
    tags=["workflows"],
    responses=errors(
        {
            401: "No or unknown API key",
            403: "The key's role cannot run this workflow",
            404: "No such workflow (in the key's scope)",
            422: "The file's problems, each with its JSON path",
        }
    ),
    openapi_extra=request_body(CaseFile.model_json_schema(), required=True),
)
async def test_workflow(
    workflow_id: str, request: Request, key: CurrentKey, tester: TesterDep
) -> TestReportPublic:
    document = parse_json_body(await request.body())
    return await tester.run(workflow_id, document, key)


@router.get(
    "/api/executions/{execution_id}/test-case",
    summary="A test file with one case recorded from a finished run",
    description="Its inputs, every activity result as a mock (by the path it ran at, one "
    "result per visit), the children's outputs, the signals it received (at the times it "
    "received them), and what it ended with as the expectation. 409 while it runs.",
    tags=["executions"],
    responses=NOT_FOUND | errors({409: "The execution is still running"}),
)
async def record_test_case(
    execution_id: str, key: CurrentKey, reader: ReaderDep, client: ClientDep
) -> dict[str, Any]:
    handle, description = await reader.describe(execution_id, key)
    status, _ = temporal_status(description.status)
    state = await final_state(handle, status != "RUNNING")
    return await recorded_case(client, execution_id, state)
