"""`set`: binds variables, in the workflow (pure). ``values`` are templates, ``compute`` CEL
expressions (``{"i": "i + 1"}``); all are evaluated before any is bound."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from workflows.conditions import compile_condition, evaluate_expression
from workflows.errors import ConditionError, Problem
from workflows.kinds.base import StepKind, StepOutcome, StepRun, register
from workflows.kinds.common import FlowMixin, StepBase, VariableName
from workflows.templating import Reference, VariableSubstitutor, tokenize
from workflows.value_types import Type, Typer


class SetStep(StepBase, FlowMixin):
    """Binds variables; runs in the workflow (pure). ``values`` are templates, ``compute``
    CEL expressions (``{"i": "i + 1"}``); all are evaluated before any is bound."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(
        json_schema_extra={"x-label": ["sets {values}", "computes {compute}"]}
    )

    type: Literal["set"]
    values: dict[VariableName, Any] = Field(default_factory=dict)
    compute: dict[VariableName, str] = Field(
        default_factory=dict, description="Variable name -> CEL expression over the context."
    )

    @model_validator(mode="after")
    def _something_to_set(self) -> SetStep:
        if not self.values and not self.compute:
            raise ValueError("give 'values' (templates) and/or 'compute' (CEL expressions)")
        both = sorted(set(self.values) & set(self.compute))
        if both:
            raise ValueError(f"{', '.join(both)} set in both 'values' and 'compute'")
        return self


def whole_reference(template: Any, strict_indexes: bool = True) -> bool:
    """True for a template that is exactly one reference, such as ``"{order}"``."""
    if not isinstance(template, str):
        return False
    tokens = tokenize(template, strict_indexes)
    return len(tokens) == 1 and isinstance(tokens[0], Reference)


def cel_problems(step: StepBase, expressions: list[tuple[str, str]], where: str) -> list[Problem]:
    """CEL expressions that do not compile, each at its path (shared by `condition`)."""
    problems = []
    for relative, expression in expressions:
        try:
            compile_condition(expression)
        except ConditionError as err:
            problems.append(
                Problem(f"{where}{relative}", f"step '{step.id}': {err}", code="invalid_condition")
            )
    return problems


@register
class SetKind(StepKind[SetStep]):
    type = "set"
    model = SetStep

    def templated(self, step: SetStep) -> dict[str, Any]:
        return {"values": step.values}

    def expressions(self, step: SetStep) -> list[tuple[str, str]]:
        return [(f".compute.{name}", expression) for name, expression in step.compute.items()]

    def binds(self, step: SetStep) -> set[str]:
        return set(step.values) | set(step.compute)

    def result_types(self, step: SetStep, typer: Typer) -> dict[str, Type]:
        found = {name: typer.value(value) for name, value in step.values.items()}
        return found | {name: typer.expression(e) for name, e in step.compute.items()}

    def problems(self, step: SetStep, where: str) -> list[Problem]:
        return cel_problems(step, self.expressions(step), where)

    async def execute(self, step: SetStep, run: StepRun) -> StepOutcome:
        strict = run.strict_indexes
        values = VariableSubstitutor(run.variables, strict_indexes=strict).render(dict(step.values))
        for name, value in values.items():
            # A whole reference ("{x}") binds a value the run already holds: not new data.
            whole = whole_reference(step.values[name], strict)
            run.checked(value, f"values.{name}", amplified=not whole)
        variables = {k: v for k, v in run.variables.items() if k != "secrets"}
        for name, expression in step.compute.items():
            values[name] = run.checked(
                evaluate_expression(expression, variables, run.cel_conformant), f"compute.{name}"
            )
        return StepOutcome(output_vars=values, next_target=step.next)
