"""`parallel`: branches of steps that run at once, in the same workflow.

Each branch is a scope of its own; the step's result is ``{"<branch id>": {name: value}}``,
the variables each branch bound. With ``fail_fast`` (the default) the first failing branch
cancels the others (their in-flight activities really stop) and the step fails with that
failure's type and message; without it every branch finishes first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from workflows.errors import Problem
from workflows.kinds.base import Scope, StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import FlowMixin, Model, OutputMixin, StepBase, StepId, require_unique
from workflows.value_types import Type, Typer, bound_object, object_of

if TYPE_CHECKING:
    from workflows.kinds.common import StepBase as Step  # the registry resolves the union

MAX_BRANCHES = 50


class ParallelBranch(Model):
    id: StepId = Field(description="The branch's key in the result, and in step paths.")
    steps: list[Step] = Field(
        min_length=1, json_schema_extra={"x-role": "steps", "x-label": "branch {id}"}
    )


class ParallelStep(StepBase, FlowMixin, OutputMixin):
    """Runs its branches concurrently; binds what each bound, by branch id."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(json_schema_extra={"x-label": "{branches} branches"})

    type: Literal["parallel"]
    branches: list[ParallelBranch] = Field(min_length=2, max_length=MAX_BRANCHES)
    fail_fast: bool = Field(
        True, description="The first failure cancels the other branches (default)."
    )

    @model_validator(mode="after")
    def _unique_branch_ids(self) -> ParallelStep:
        require_unique([branch.id for branch in self.branches], "branch ids")
        return self


@register
class ParallelKind(StepKind[ParallelStep]):
    type = "parallel"
    model = ParallelStep
    nested_models = (ParallelBranch, ParallelStep)

    def scopes(self, step: ParallelStep) -> list[Scope]:
        return [
            Scope(f".branches[{i}].steps", branch.steps) for i, branch in enumerate(step.branches)
        ]

    def result_types(self, step: ParallelStep, typer: Typer) -> dict[str, Type]:
        if not step.output:
            return {}
        bound = {
            b.id: bound_object(typer.scope_binds(step, i)) for i, b in enumerate(step.branches)
        }
        return {step.output: object_of(bound)}

    def problems(self, step: ParallelStep, where: str) -> list[Problem]:
        return []

    async def execute(self, step: ParallelStep, run: StepRun) -> StepOutcome:
        def branch_job(branch: ParallelBranch, ways: int) -> Any:
            # `ways`: branches not yet started, which share what the scope may still start.
            return lambda: run.run_scope(branch.steps, {}, f"{run.path}.{branch.id}", ways)

        count = len(step.branches)
        results = await run.run_concurrently(
            [branch_job(branch, count - i) for i, branch in enumerate(step.branches)],
            limit=len(step.branches),
            fail_fast=step.fail_fast,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result  # the first failed branch, in branch order (fail_fast off)
        bound = {branch.id: result for branch, result in zip(step.branches, results, strict=True)}
        outputs = {step.output: bound} if step.output else {}
        return StepOutcome(output_vars=outputs, next_target=step.next)
