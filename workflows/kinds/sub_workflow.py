"""`sub_workflow`: runs another saved workflow as a Temporal child workflow.

The child is an execution of its own (its own id, log and status; linked from the parent in
the Temporal UI); the step binds the child's ``outputs``. Which definition runs is fixed when
the parent starts: the API puts every workflow the parent can call, at the version current
then (or the pinned ``version``), into the run's input, so a parent is pinned as its children
are and the workflow code reads no store. Cancelling the parent cancels the child; a failed
child fails the step with type ``ChildWorkflowFailed`` and the child's own message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import ConfigDict, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ChildWorkflowCancellationType

from workflows import versions
from workflows.errors import FailureType, StepFailed
from workflows.kinds.base import StepKind, StepOutcome, StepRun, register, starts_executions
from workflows.kinds.common import FlowMixin, OutputMixin, StepBase, WorkflowId
from workflows.messages import (
    TEST_ID_PREFIX,
    WORKFLOW_TYPE,
    ExecutionState,
    library_key,
)
from workflows.run_inputs import checked_inputs
from workflows.templating import VariableSubstitutor

if TYPE_CHECKING:  # the shared input model holds the definition, which holds the kinds
    from workflows.shared import LibraryEntry

MAX_DEPTH = 10  # a workflow calling itself (or a cycle) stops here with a clear failure
# A child's inputs pass the check an API start of it passes (defaults filled, the whole
# `inputs` schema, undeclared names); earlier runs checked only required and undeclared names.
PATCH_CHILD_INPUTS_CHECKED = "child-inputs-checked"
# The schema check in workflow code is bounded by keyword evaluations (the same verdict on
# every replay), about as much work as the API's time budget allows on a fast machine.
CHILD_INPUT_CHECKS = 200_000
# A child's id is `<its workflow id>-<uuid>` (older runs: `<parent id>-<step>-<visit>`, which
# outgrew Temporal's and the log's id limits some levels down).
PATCH_SHORT_CHILD_IDS = "short-child-ids"


class SubWorkflowStep(StepBase, FlowMixin, OutputMixin):
    """Runs a saved workflow as a child; binds the child's outputs."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(
        json_schema_extra={"x-label": ["runs workflow {workflow_id}", "v{version}"]}
    )

    type: Literal["sub_workflow"]
    workflow_id: WorkflowId = Field(
        description="The saved workflow to run.", json_schema_extra={"x-role": "workflow-id"}
    )
    input_vars: dict[str, Any] = Field(
        default_factory=dict, description="The child's inputs (templates over this scope)."
    )
    version: int | None = Field(
        None, ge=1, description="Default: the version current when the parent started."
    )


@register
class SubWorkflowKind(StepKind[SubWorkflowStep]):
    type = "sub_workflow"
    model = SubWorkflowStep
    waits = True

    def starts_executions(self, step: SubWorkflowStep) -> bool:
        return True

    def calls(self, step: SubWorkflowStep) -> list[tuple[str, int | None]]:
        return [(str(step.workflow_id), step.version)]

    def templated(self, step: SubWorkflowStep) -> dict[str, Any]:
        return {"input_vars": step.input_vars}

    async def execute(self, step: SubWorkflowStep, run: StepRun) -> StepOutcome:
        input_vars = VariableSubstitutor(run.variables, strict_indexes=run.strict_indexes).render(
            step.input_vars
        )
        run.checked(input_vars, "input_vars")
        child = await run_child(
            run, step.workflow_id, step.version, input_vars, run.path, step.label
        )
        bound = {step.output: child.outputs} if step.output else {}
        return StepOutcome(bound, step.next, reused_from=child.reused_from, reuse_key=child.key)


class ChildRun(NamedTuple):
    outputs: dict[str, Any]
    reused_from: str | None  # the run a rerun took the outputs from, if it did
    key: str | None  # the request key a rerun matched (None: no rerun took it)


async def run_child(
    run: StepRun,
    workflow_id: str | int,
    version: int | None,
    input_vars: Any,
    path: str,
    label: str,
) -> ChildRun:
    """Run a saved workflow as a child of this run (a `sub_workflow` step, an agent's
    workflow tool). Failures raise StepFailed (ChildWorkflowFailed)."""
    entry = _callable(run, workflow_id, version)
    if versions.patched(PATCH_CHILD_INPUTS_CHECKED):
        input_vars = _checked(entry.definition.inputs, input_vars, workflow_id)
    else:  # runs started before: only required and undeclared names were checked
        _check_inputs(entry.definition.inputs, input_vars, workflow_id)
    fields = {"path": path, "workflow_id": str(workflow_id), "version": entry.version}
    reused = run.reused("sub_workflow", {**fields, "input_vars": input_vars})
    if reused is not None:  # a rerun: the source ran this very child already
        return ChildRun(dict(reused.result or {}), reused.source, reused.key)
    mocked = run.mocked_child(path)
    if mocked is not None:  # a test run's mock: no child runs
        return ChildRun(mocked, None, None)
    child_id = _child_id(run, entry.definition.key, path)
    child = _child_input(run, entry, input_vars, path)
    run.started_child(child_id)
    run.expect_wait(None)  # a child run takes what it takes
    try:
        with run.real_wait():
            result: ExecutionState = await workflow.execute_child_workflow(
                WORKFLOW_TYPE,
                child,
                id=child_id,
                result_type=ExecutionState,
                cancellation_type=ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                static_summary=f"{label}: {entry.definition.title} · v{entry.version}",
            )
    except ChildWorkflowError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(err)
        raise StepFailed(
            f"sub-workflow '{workflow_id}' ({child_id}) failed: {message}",
            FailureType.CHILD_WORKFLOW_FAILED,
        ) from None
    run.refund(result.descendants_left)
    return ChildRun(dict(result.outputs), None, None)


def _callable(run: StepRun, workflow_id: str | int, version: int | None) -> LibraryEntry:
    """The definition the run may call (loaded when it started), within the depth cap."""
    entry = run.input.library.get(library_key(workflow_id, version))
    if entry is None:
        pinned = f" version {version}" if version else ""
        raise StepFailed(
            f"workflow '{workflow_id}'{pinned} was not saved when this run started; "
            "save it, then start the run again",
            FailureType.INVALID_REQUEST,
        )
    if run.input.depth >= MAX_DEPTH:
        raise StepFailed(
            f"sub-workflows nest {MAX_DEPTH} deep here; does '{workflow_id}' call "
            "itself without an end?",
            FailureType.INVALID_REQUEST,
        )
    return entry


def _child_input(run: StepRun, entry: LibraryEntry, input_vars: Any, path: str) -> Any:
    """The child's input: this run's, for another definition, one level deeper, with its
    share of the run's allowance of executions (paid for here)."""
    grant = run.pay_for_child(starts_executions(entry.definition.steps))
    return run.input.model_copy(
        update={
            "definition": entry.definition,
            "definition_version": entry.version,
            "definition_hash": None,
            "input_vars": input_vars,
            "carried": None,
            "batch": None,
            "depth": run.input.depth + 1,
            "started_by": run.execution_id,
            "parent_path": path,
            "parent_seq": run.seq,
            # A child's steps are its own: none matches a parent's recorded request.
            "reuse": {},
            "rerun_of": None,
            "descendants_left": grant,
        }
    )


def _checked(schema: dict[str, Any] | None, values: Any, workflow_id: Any) -> dict[str, Any]:
    """The child's inputs as a start of it would take them, or StepFailed naming every
    problem (an agent's workflow tool hands that back to the model)."""
    filled, problems = checked_inputs(schema, values, "$.input_vars", CHILD_INPUT_CHECKS)
    if problems:
        listed = "; ".join(f"{p.path}: {p.message}" for p in problems[:10])
        raise StepFailed(
            f"workflow '{workflow_id}' refuses these inputs ({listed})",
            FailureType.INVALID_REQUEST,
        )
    return filled


def _child_id(run: StepRun, workflow_key: str, path: str) -> str:
    """The child's execution id: the called workflow's id and a unique suffix, as short at
    depth ten as at depth one (older runs grew the parent's id at every level)."""
    if run.testing:  # a test run's children are test runs: kept out of the lists as well
        return f"{TEST_ID_PREFIX}{workflow_key}-{workflow.uuid4()}"
    if versions.patched(PATCH_SHORT_CHILD_IDS):
        return f"{workflow_key}-{workflow.uuid4()}"
    name = path.rsplit(".", 1)[-1].replace("[", "-").replace("]", "")
    return f"{run.execution_id}-{name}-{run.seq}"


def _check_inputs(schema: dict[str, Any] | None, values: Any, workflow_id: Any) -> None:
    """The child's declared inputs: required ones present, no undeclared ones (the API's own
    rule); the rest of the schema is the child's to check where its steps read them."""
    if not isinstance(values, dict):
        raise StepFailed("sub_workflow input_vars must be an object", FailureType.INVALID_REQUEST)
    if not isinstance(schema, dict):
        return
    properties = schema.get("properties")
    required = [name for name in schema.get("required") or [] if name not in values]
    if required:
        raise StepFailed(
            f"workflow '{workflow_id}' requires input {', '.join(map(str, required))}; "
            "add it to the step's input_vars",
            FailureType.INVALID_REQUEST,
        )
    if isinstance(properties, dict):
        undeclared = sorted(name for name in values if name not in properties)
        if undeclared:
            raise StepFailed(
                f"workflow '{workflow_id}' declares no input {', '.join(undeclared)}",
                FailureType.INVALID_REQUEST,
            )
