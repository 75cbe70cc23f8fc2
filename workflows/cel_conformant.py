"""The CEL evaluator of runs started with the ``cel-conformant`` marker (docs/expressions.md).

The runtime is ``cel-expr-python``, Google's C++ CEL implementation (cel-cpp), chosen by
measurement over the cel-spec conformance cases (bench/cel_runtimes.py). No Python ``eval``,
no I/O, no clock. Around it, what the engine needs and the runtime does not give:

- the names an expression reads, from its syntax tree (workflows.cel_ast): comprehension
  variables may share a name with a context variable; type names are not variables unless
  the run holds one so named;
- deterministic map iteration (sorted keys) and two-variable comprehensions, by rewriting the
  tree before the runtime plans it (workflows.cel_ast);
- results as JSON the run can hold (workflows.cel_values), errors in words
  (workflows.cel_errors), and the replay-safe cost bound (workflows.cel_budget).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from cel_expr_python import cel
from google.protobuf import any_pb2

from workflows.cel_ast import SORTED_KEYS, TO_MAP, TYPE_NAMES, NotSupported, free_names, rewrite
from workflows.cel_budget import check_budget
from workflows.cel_errors import compile_message, evaluation_message, unknown_names
from workflows.cel_syntax import PARSED_EXPR_URL, message_class
from workflows.cel_values import pairs_to_map, sorted_keys, to_json
from workflows.errors import ConditionError

MAX_EXPRESSION_LENGTH = 4096


@dataclass(frozen=True)
class Program:
    """A compiled expression and the names it reads."""

    expression: str
    compiled: Any  # cel_expr_python.cel.Expression
    variables: frozenset[str]  # the run must hold each
    type_names: frozenset[str]  # `int`, `string`...: read as variables only if the run holds them


@cache
def _env() -> Any:
    """One environment: the standard library plus the helpers the rewrite calls."""
    dyn = cel.Type.DYN
    any_map = cel.Type.Map(dyn, dyn)
    any_list = cel.Type.List(dyn)
    helpers = [
        (SORTED_KEYS, any_list, [any_map, cel.Type.INT], sorted_keys),
        (TO_MAP, any_map, [any_list], pairs_to_map),
    ]
    return cel.NewEnv(
        functions=[
            cel.FunctionDecl(
                name,
                [cel.Overload(f"{name}_overload", return_type=out, parameters=args, impl=impl)],
            )
            for name, out, args, impl in helpers
        ]
    )


@lru_cache(maxsize=1024)
def compile_program(expression: str) -> Program:
    """Parse, rewrite and plan; a ConditionError says where and why it cannot be."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ConditionError(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    env = _env()
    try:
        parsed_any = any_pb2.Any.FromString(env.compile(expression, disable_check=True).serialize())
    except Exception as err:  # RuntimeError from the parser; text it cannot take (surrogates)
        raise ConditionError(compile_message(expression, str(err))) from None
    parsed = message_class("ParsedExpr").FromString(parsed_any.value)
    try:
        rewritten = rewrite(parsed)
    except NotSupported as err:
        raise ConditionError(f"invalid CEL expression: {err}") from None
    names = free_names(rewritten.expr)
    planned = any_pb2.Any(type_url=PARSED_EXPR_URL, value=rewritten.SerializeToString())
    try:
        compiled = env.deserialize(planned.SerializeToString())
    except RuntimeError as err:  # e.g. nested deeper than the runtime plans
        raise ConditionError(compile_message(expression, str(err))) from None
    return Program(
        expression, compiled, frozenset(names - TYPE_NAMES), frozenset(names & TYPE_NAMES)
    )


def variables(expression: str) -> set[str]:
    return set(compile_program(expression).variables)


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluate to a JSON value; a missing name, an error or a cost too high: ConditionError."""
    program = compile_program(expression)
    missing = sorted(name for name in program.variables if name not in context)
    if missing:
        raise ConditionError(unknown_names(expression, missing))
    values = {name: context[name] for name in program.variables}
    values.update({name: context[name] for name in program.type_names if name in context})
    check_budget(expression, values.values())  # bounded work and memory, decided replay-safely
    try:
        result = program.compiled.eval(data=values)
    except Exception as err:  # a value the runtime cannot take in, or an internal error
        raise ConditionError(evaluation_message(expression, str(err))) from None
    if result.type() == cel.Type.ERROR:
        raise ConditionError(evaluation_message(expression, str(result.value())))
    return to_json(result.plain_value(), expression)
