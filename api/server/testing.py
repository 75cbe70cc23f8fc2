"""Running a test file: each case a real run of the workflow, marked as a test (docs/testing.md).

Every case starts the one generic workflow on this deployment's Temporal with the case's
mocks and signals in its input and an id of its own (``test-...``, left out of the lists),
waits for it, and compares what it ended with to what the case expects. The answer says
each problem in words: the output key with expected and actual, the first step where the
path differed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from api.server.auth import Principal
from api.server.bodies import validated
from api.server.errors import ApiError
from api.server.executions.starting import Starter
from api.server.library import library_for
from api.server.schemas import CaseResultPublic, TestReportPublic
from api.server.store import StoredDefinition
from workflows.messages import STATUS_QUERY, TEST_ID_PREFIX, WORKFLOW_TYPE, ExecutionState
from workflows.testfile import TEST_FAILURES, Case, CaseFile, CaseRun, Expectation, file_problems

# Real seconds a case may take: its waits are virtual, so only real work (log writes, the
# engine's own steps) counts; a case past this is stopped and fails.
CASE_TIMEOUT_SECONDS = 60.0
MAX_SHOWN = 200  # characters of a value quoted in a problem


@dataclass
class Tester:
    """Runs the cases of a test file against a saved workflow."""

    client: Client
    starter: Starter

    async def checked(
        self, workflow_id: str, document: Any, principal: Principal
    ) -> tuple[CaseFile, StoredDefinition, list[CaseRun]]:
        """The file, the definition it tests and each case's run flag; every problem of
        the file (its shape, mocks naming no step, mock results of the wrong shape): 422."""
        if isinstance(document, dict) and "workflow_id" not in document:
            document = {**document, "workflow_id": workflow_id}
        file = validated(CaseFile, document)
        if str(file.workflow_id) != workflow_id:
            raise ApiError(
                422,
                "invalid_request",
                f"the file tests workflow '{file.workflow_id}', not '{workflow_id}'",
                "$.workflow_id",
            )
        stored = await self.starter.runnable(workflow_id, principal, file.version)
        called = (await library_for(stored.definition, self.starter.store)).values()
        steps = [*stored.definition.steps, *(s for e in called for s in e.definition.steps)]
        problems, runs = file_problems(file, steps)
        if problems:
            raise ApiError.from_problems(422, problems)
        return file, stored, runs

    async def run(self, workflow_id: str, document: Any, principal: Principal) -> TestReportPublic:
        file, stored, runs = await self.checked(workflow_id, document, principal)
        results = await asyncio.gather(
            *(
                self._case(stored, case, run, principal)
                for case, run in zip(file.cases, runs, strict=True)
            )
        )
        passed = sum(1 for r in results if r.status == "passed")
        return TestReportPublic(passed=passed, failed=len(results) - passed, cases=list(results))

    async def _case(
        self, stored: StoredDefinition, case: Case, run: CaseRun, principal: Principal
    ) -> CaseResultPublic:
        began = time.monotonic()
        try:
            options = await self.starter.prepared(stored, case.input_vars, principal)
        except ApiError as err:
            refused = "; ".join(f"{e.get('path', '$')}: {e['message']}" for e in err.errors)
            return _result(
                case, [f"the workflow refuses the case's inputs: {refused}"], None, began
            )
        execution_id = f"{TEST_ID_PREFIX}{stored.definition.key}-{uuid.uuid4().hex[:12]}"
        handle = await self.client.start_workflow(
            WORKFLOW_TYPE,
            options.input.model_copy(update={"test": run}),
            id=execution_id,
            task_queue=self.starter.settings.temporal_task_queue,
            search_attributes=options.search_attributes,
            static_summary=f"test: {case.name} · {options.static_summary}",
            result_type=ExecutionState,
        )
        state = await _outcome(handle)
        if state is None:
            return _result(
                case,
                [f"the run did not end within {CASE_TIMEOUT_SECONDS:g} s of real time (stopped)"],
                execution_id,
                began,
            )
        return _result(case, judge(case.expect, state), execution_id, began)


async def _outcome(handle: WorkflowHandle[Any, Any]) -> ExecutionState | None:
    """How the run ended (its state, also when it failed); None if it ran past the limit."""
    try:
        return await asyncio.wait_for(handle.result(), CASE_TIMEOUT_SECONDS)
    except WorkflowFailureError:
        return await handle.query(STATUS_QUERY, result_type=ExecutionState)
    except TimeoutError:
        with contextlib.suppress(RPCError):  # it ended meanwhile
            await handle.terminate("the test case ran past its time")
        return None


def _result(
    case: Case, problems: list[str], execution_id: str | None, began: float
) -> CaseResultPublic:
    return CaseResultPublic(
        name=case.name,
        status="failed" if problems else "passed",
        problems=problems,
        execution_id=execution_id,
        seconds=round(time.monotonic() - began, 3),
    )


# -- what the case expected ------------------------------------------------------------------


def judge(expect: Expectation, state: ExecutionState) -> list[str]:
    """Every way the run differs from what the case expects, each in a sentence."""
    data = state.model_dump(mode="json", by_alias=True)
    problems = [
        f"step '{r.path or r.step_id}': {r.error}"
        for r in state.steps
        if r.error_type in TEST_FAILURES
    ]
    wanted = expect.status or ("failed" if expect.error_type else "completed")
    if state.status != wanted:
        why = f" ({state.error.type}: {state.error.message})" if state.error else ""
        problems.append(f"status: expected '{wanted}', the run ended '{state.status}'{why}")
    if expect.error_type is not None:
        actual = state.error.type if state.error else None
        if actual != expect.error_type:
            problems.append(f"error type: expected '{expect.error_type}', got {_shown(actual)}")
    if expect.outputs is not None:
        problems += _subset(expect.outputs, data["outputs"], "")
    if expect.steps is not None:
        visited = [r.step_id for r in sorted(state.steps, key=lambda r: r.seq)]
        problem = path_difference(expect.steps, visited)
        if problem is not None:
            problems.append(problem)
    return problems


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _subset(expected: Any, actual: Any, where: str) -> list[str]:
    """Every key of ``expected`` must match in ``actual`` (recursively in objects)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        problems: list[str] = []
        for key, value in expected.items():
            at = f"{where}.{key}" if where else key
            if key not in actual:
                problems.append(f"output '{at}': expected {_shown(value)}, the run has no such key")
            else:
                problems += _subset(value, actual[key], at)
        return problems
    if (expected == actual and type(expected) is type(actual)) or _same_number(expected, actual):
        return []
    return [f"output '{where}': expected {_shown(expected)}, got {_shown(actual)}"]


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def path_difference(expected: list[str], visited: list[str]) -> str | None:
    """The first step where the run's path left the expected one, in words (None: same)."""
    for index, (want, went) in enumerate(zip(expected, visited, strict=False)):
        if want != went:
            before = f" after '{visited[index - 1]}'" if index else " first"
            return (
                f"steps: the run went to '{went}'{before} (step {index + 1}); the case "
                f"expected '{want}' (visited: {', '.join(visited)})"
            )
    if len(visited) < len(expected):
        last = f"after '{visited[-1]}'" if visited else "before any step"
        return (
            f"steps: the run ended {last}; the case expected '{expected[len(visited)]}' next "
            f"(visited: {', '.join(visited)})"
        )
    if len(visited) > len(expected):
        return (
            f"steps: the run went on to '{visited[len(expected)]}' after the case's last step "
            f"(visited: {', '.join(visited)})"
        )
    return None
