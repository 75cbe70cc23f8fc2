"""The CEL evaluator of runs started before the ``cel-conformant`` marker, kept as it was.

Uses the `common-expression-language` package (a Rust CEL implementation): no Python
``eval``, no I/O, no clock. Runs started since the marker use :mod:`workflows.cel_conformant`;
a run never switches (workflows/interpreter.py decides once per run), so a run in flight
replays with the semantics it started with, map-order quirks included: its recorded path
was taken with them. Do not change what this module computes; new behaviour goes into the
conformant evaluator.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import cel

from workflows.cel_budget import check_budget
from workflows.errors import ConditionError

# Variables bound by comprehension macros (`items.exists(x, x > 1)`) are not context names.
_MACRO_VARIABLE = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,"
)

MAX_EXPRESSION_LENGTH = 4096


@lru_cache(maxsize=1024)
def compile_legacy(expression: str) -> Any:
    """Compile a CEL expression; raise ConditionError naming the syntax problem."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ConditionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        return cel.compile(expression)
    except (ValueError, RuntimeError) as err:
        raise ConditionError(f"invalid CEL expression: {_first_line(err)}") from None


def legacy_variables(expression: str) -> set[str]:
    """Top-level context names an expression reads (macro-bound names excluded)."""
    program = compile_legacy(expression)
    bound = set(_MACRO_VARIABLE.findall(expression))
    return {name for name in program.variables() if name not in bound}


def evaluate_legacy(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a CEL expression to a JSON value (timestamps become ISO 8601 text)."""
    program = compile_legacy(expression)
    wanted = legacy_variables(expression)
    missing = sorted(name for name in wanted if name not in context)
    if missing:
        raise ConditionError(
            f"condition {expression!r} reads {', '.join(missing)}, which the execution "
            "does not hold (not an input and not set by any step so far)"
        )
    values = {name: context[name] for name in wanted}
    check_budget(expression, values.values())  # bounded work and memory, decided replay-safely
    try:
        result = program.execute(values)
    except Exception as err:  # the CEL runtime raises several builtin types
        raise ConditionError(f"expression {expression!r} failed: {_first_line(err)}") from None
    return _json_value(result, expression)


def _json_value(value: Any, expression: str) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json_value(item, expression) for item in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v, expression) for k, v in value.items()}
    raise ConditionError(
        f"expression {expression!r} gave a {type(value).__name__}; convert it with string()"
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
