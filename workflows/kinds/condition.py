"""`condition`: takes the first branch whose CEL ``when`` is true, else ``default``; pure."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from workflows.conditions import evaluate_condition
from workflows.errors import Problem
from workflows.kinds.base import Edge, StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import Model, StepBase, StepTarget
from workflows.kinds.set_values import cel_problems


class Branch(Model):
    model_config = ConfigDict(json_schema_extra={"x-label": "if {when}"})

    when: str = Field(min_length=1, max_length=4096, description="CEL expression (bool).")
    next: StepTarget = Field(json_schema_extra={"x-flow": "branch"})


class ConditionStep(StepBase):
    """Takes the first branch whose CEL ``when`` is true, else ``default``."""

    type: Literal["condition"]
    branches: list[Branch] = Field(min_length=1)
    default: StepTarget | None = Field(
        None,
        description="Target when no branch matches (default: the following step).",
        json_schema_extra={"x-flow": "default", "x-label": "otherwise"},
    )


@register
class ConditionKind(StepKind[ConditionStep]):
    type = "condition"
    model = ConditionStep
    routes_errors = False  # a condition that cannot be evaluated is a bug in the definition

    def expressions(self, step: ConditionStep) -> list[tuple[str, str]]:
        return [(f".branches[{i}].when", b.when) for i, b in enumerate(step.branches)]

    def successors(self, step: ConditionStep) -> list[Edge]:
        return [Edge(b.next) for b in step.branches] + [Edge(step.default)]

    def jumps(self, step: ConditionStep) -> list[tuple[str, str]]:
        found = [(f".branches[{i}].next", b.next) for i, b in enumerate(step.branches)]
        if step.default is not None:
            found.append((".default", step.default))
        return found

    def problems(self, step: ConditionStep, where: str) -> list[Problem]:
        return cel_problems(step, self.expressions(step), where)

    async def execute(self, step: ConditionStep, run: StepRun) -> StepOutcome:
        variables = {k: v for k, v in run.variables.items() if k != "secrets"}
        for branch in step.branches:
            if evaluate_condition(branch.when, variables, run.cel_conformant):
                return StepOutcome(next_target=branch.next)
        return StepOutcome(next_target=step.default)
