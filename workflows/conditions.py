"""CEL for `condition` steps' ``when`` and `set` steps' ``compute``: compiled once per process,
evaluated deterministically inside workflow code (docs/expressions.md).

Two evaluators, and a run uses one from start to end (workflows/interpreter.py decides with
the ``cel-conformant`` patch marker and hands the choice to the kinds as
``StepRun.cel_conformant``):

- conformant (:mod:`workflows.cel_conformant`): runs started since the marker, and every
  check at save time;
- legacy (:mod:`workflows.cel_legacy`): runs started before it, which must replay as they ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows import cel_conformant, cel_legacy
from workflows.errors import ConditionError

MAX_EXPRESSION_LENGTH = cel_conformant.MAX_EXPRESSION_LENGTH


def compile_condition(expression: str, conformant: bool = True) -> Any:
    """Compile (cached); raise ConditionError saying where and why the expression is wrong."""
    if conformant:
        return cel_conformant.compile_program(expression)
    return cel_legacy.compile_legacy(expression)


def condition_variables(expression: str, conformant: bool = True) -> set[str]:
    """Context names the expression reads (comprehension variables and type names excluded)."""
    if conformant:
        return cel_conformant.variables(expression)
    return cel_legacy.legacy_variables(expression)


def evaluate_expression(
    expression: str, context: Mapping[str, Any], conformant: bool = True
) -> Any:
    """Evaluate to a JSON value; a missing variable, an error or a cost over the bound is a
    ConditionError."""
    if conformant:
        return cel_conformant.evaluate(expression, context)
    return cel_legacy.evaluate_legacy(expression, context)


def evaluate_condition(
    expression: str, context: Mapping[str, Any], conformant: bool = True
) -> bool:
    """Evaluate to a bool; anything else is a ConditionError."""
    result = evaluate_expression(expression, context, conformant)
    if not isinstance(result, bool):
        raise ConditionError(
            f"condition {expression!r} gave {type(result).__name__} {result!r}, not a bool"
        )
    return result
