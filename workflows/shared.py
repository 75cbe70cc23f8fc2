"""The execution's input (:class:`ExecutionInput`) and the definitions it carries for its
sub-workflows (:class:`LibraryEntry`): the messages that hold a workflow definition, which the
rest of :mod:`workflows.messages` does not know."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from workflows.definition import WorkflowDefinition
from workflows.flow.messages import ConcurrencyClaim
from workflows.messages import (
    CarriedState,
    ExecutionLimits,
    ForeachBatchInput,
    ReusedResult,
    _Model,
)
from workflows.testfile import CaseRun


class LibraryEntry(_Model):
    """A definition a run may call as a sub-workflow, with its version."""

    version: int
    definition: WorkflowDefinition


class ExecutionInput(_Model):
    """What the API passes to one execution: a snapshot of the definition and the inputs."""

    definition: WorkflowDefinition
    input_vars: dict[str, Any] = Field(default_factory=dict)
    definition_version: int | None = None
    definition_hash: str | None = None
    started_by: str | None = None
    max_steps_per_run: int | None = Field(
        None, description="Continue as new after this many steps (also when Temporal suggests)."
    )
    limits: ExecutionLimits | None = None
    carried: CarriedState | None = None
    library: dict[str, LibraryEntry] = Field(
        default_factory=dict,
        description="The definitions its sub_workflow steps run, by `id` (the version current "
        "when the run started) and `id@version` (a pinned version).",
    )
    depth: int = Field(0, ge=0, description="How deep a sub-workflow this run is (0: top).")
    batch: ForeachBatchInput | None = Field(
        None, description="Set for a share of a large foreach (a ForeachBatch child workflow)."
    )
    rerun_of: str | None = Field(None, description="The execution this one reruns.")
    reuse: dict[str, ReusedResult] = Field(
        default_factory=dict,
        description="Results a rerun takes instead of calling out, by request key.",
    )
    parent_path: str | None = Field(
        None, description="For a sub-workflow: the path of the parent's step that runs it."
    )
    parent_seq: int | None = Field(
        None, description="For a sub-workflow: the visit number of the parent's step."
    )
    descendants_left: int | None = Field(
        None,
        description="For a child (or a foreach share): executions it may still start, handed "
        "by its parent (workflows/run_tree.py); a top-level run takes limits.max_descendants.",
    )
    api_url: str | None = Field(
        None,
        description="The engine API's base URL, as the API that started the run knows it: "
        "`{execution.api_url}` (sub-workflows inherit it).",
    )
    test: CaseRun | None = Field(
        None,
        description="Set for a test run (docs/testing.md): its mocks and scripted signals; "
        "sub-workflows inherit it.",
    )
    concurrency: ConcurrencyClaim | None = Field(
        None,
        description="The definition's `concurrency`, its key resolved when the run started: "
        "the run waits for a place before its first step (workflows/flow/).",
    )
