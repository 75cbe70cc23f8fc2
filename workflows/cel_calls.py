"""The checks of CEL's operators and functions by their operands' types (workflows/cel_ops.py
has the tables): each gives the result's type, or a :class:`Report` of why the call fails
whenever it runs (workflows/cel_types.py turns it into a finding)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflows import cel_hints
from workflows.cel_ops import BINARY, FUNCTIONS, UNARY, VERBS
from workflows.cel_text import INFIX, text_of
from workflows.value_types import (
    BOOL_T,
    DOUBLE,
    DYN,
    INT,
    LIST,
    MAP,
    UINT,
    Type,
    a,
    describe,
    join,
    join_all,
    list_of,
    scalar,
)


@dataclass(frozen=True)
class Report:
    """Why a call fails whenever it runs, a hint, and the operands it is about."""

    message: str
    hint: str
    about: tuple[Any, ...]


def binary_call(node: Any, operands: list[Any], types: list[Type]) -> Type | Report:
    function = node.call_expr.function
    left, right = types
    table = BINARY[function]
    results = [table[(x, y)] for x in left.kinds for y in right.kinds if (x, y) in table]
    if results:
        kinds = frozenset(results)
        if LIST in kinds:
            joined = list_of(join(left.element(), right.element()))
            return join(joined, Type(kinds - {LIST}))
        return Type(kinds)
    shown = [text_of(operand) for operand in operands]
    return Report(
        f"'{INFIX[function]}' cannot {VERBS[function]} {shown[0]} ({describe(left)}) "
        f"{'with' if VERBS[function] == 'compare' else 'and'} {shown[1]} "
        f"({describe(right)}): this fails whenever it runs",
        cel_hints.binary(function, operands, types),
        tuple(operands),
    )


def membership_call(node: Any, operands: list[Any], types: list[Type]) -> Type | Report:
    container = types[1]
    if container.has(LIST, MAP):
        return BOOL_T
    return Report(
        f"'in' looks in a list or a map; {text_of(operands[1])} is {a(container)}: "
        "this fails whenever it runs",
        cel_hints.membership(operands, container),
        (operands[1],),
    )


def index_call(node: Any, operands: list[Any], types: list[Type]) -> Type | Report:
    target, position = types
    reached: list[Type] = []
    if LIST in target.kinds and position.has(INT, UINT, DOUBLE):
        reached.append(target.element())
    if MAP in target.kinds:
        key = operands[1]
        constant = key.WhichOneof("expr_kind") == "const_expr"
        if constant and key.const_expr.WhichOneof("constant_kind") == "string_value":
            reached.append(target.field(key.const_expr.string_value) or target.values())
        else:
            reached.append(target.values())
    if reached:
        return join_all(reached)
    shown = text_of(operands[0])
    if LIST in target.kinds:
        what = f"the list {shown} by {text_of(operands[1])}, {a(position)}"
    else:
        what = f"{shown}, {a(target)}"
    return Report(
        f"{text_of(node)} indexes {what}: only a list (by a number) or a map takes [ ], "
        "so this fails whenever it runs",
        cel_hints.index(shown, target),
        (operands[0],),
    )


def unary_call(node: Any, operand: Any, value: Type) -> Type | Report:
    function = node.call_expr.function
    accepted = UNARY[function]
    if value.kinds & accepted:
        return Type(value.kinds & accepted)
    sign = function[0]
    wanted = "a bool" if sign == "!" else "an int or a double"
    return Report(
        f"'{sign}' applies to {wanted}; {text_of(operand)} is {a(value)}: this fails "
        "whenever it runs",
        "",
        (operand,),
    )


def function_call(node: Any, operands: list[Any], types: list[Type]) -> Type | Report:
    function = node.call_expr.function
    accepted, result = FUNCTIONS[(function, len(types))]
    for operand, value, kinds in zip(operands, types, accepted, strict=True):
        if not value.kinds & kinds:
            return Report(
                f"{function}() does not apply to {text_of(operand)}, {a(value)}: "
                "this fails whenever it runs",
                cel_hints.function(function, text_of(operand), value),
                (operand,),
            )
    return scalar(result) if result is not None else DYN
