"""The inputs of a run, checked the same way on every path that starts one.

An API start, a rerun, a webhook, a schedule, a `sub_workflow` step and an agent's workflow
tool all hand a workflow its ``input_vars`` through :func:`checked_inputs`: the top-level
``default``s of its ``inputs`` schema filled in, then every problem at once: a reserved name,
a value the schema refuses, a name the schema does not declare. Pure and deterministic, so the
workflow applies it to its children exactly as the API applies it to a start (in workflow code
with a budget counted in checks, not in seconds: the same verdict on every replay).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.errors import Problem
from workflows.input_schema import VIOLATION, undeclared_problems, value_problems, with_defaults

RESERVED_INPUTS = frozenset({"execution", "secrets"})
INVALID_INPUT = "invalid_input"


def checked_inputs(
    schema: dict[str, Any] | None,
    values: Any,
    where: str = "$.input_vars",
    max_checks: int | None = None,
) -> tuple[dict[str, Any], list[Problem]]:
    """``values`` with defaults filled, and every problem (empty when the run may start).

    ``max_checks`` bounds the schema check by keyword evaluations instead of wall time (for
    workflow code, where the verdict must not depend on how fast the worker is).
    """
    if not isinstance(values, Mapping):
        return {}, [Problem(where, "input_vars must be a JSON object", INVALID_INPUT)]
    reserved = sorted(RESERVED_INPUTS & set(values))
    if reserved:
        return dict(values), [
            Problem(f"{where}.{name}", f"'{name}' is reserved and cannot be an input",
                    INVALID_INPUT)
            for name in reserved
        ]  # fmt: skip
    filled = dict(with_defaults(schema, dict(values)))
    if not schema:
        return filled, []
    problems = [
        Problem(p.path, p.message, INVALID_INPUT if p.code == VIOLATION else p.code)
        for p in value_problems(schema, filled, where, max_checks=max_checks)
    ]
    return filled, problems + undeclared_inputs(schema, filled, where)


def undeclared_inputs(
    schema: dict[str, Any] | None, values: Mapping[str, Any], where: str = "$.input_vars"
) -> list[Problem]:
    """Inputs the ``inputs`` schema does not declare (docs/inputs.md): a schema that names its
    inputs (in ``properties`` or ``patternProperties``, at the top or in a schema applied there)
    refuses any other name, so a caller cannot slip variables into the run's context, unless
    it takes any name (``additionalProperties`` / ``unevaluatedProperties``)."""
    if not isinstance(schema, dict):
        return []
    return [
        Problem(problem.path, problem.message, INVALID_INPUT)
        for problem in undeclared_problems(schema, dict(values), where)
    ]
