"""Hints for the save-time type errors of CEL expressions (workflows/cel_types.py): the likely
fix, written as CEL the author can paste."""

from __future__ import annotations

import difflib
from typing import Any

from workflows.cel_ops import CONVERSIONS, FUNCTIONS, TEXT_METHODS
from workflows.cel_text import INFIX, text_of
from workflows.value_types import (
    BOOL,
    DOUBLE,
    INT,
    LIST,
    MAP,
    NULL,
    NUMBERS,
    STRING,
    TIMESTAMP,
    UINT,
    Type,
)

_KIND_WORDS = {
    INT: "an int",
    UINT: "a uint",
    DOUBLE: "a double",
    STRING: "text",
    BOOL: "a bool",
    "bytes": "bytes",
    LIST: "a list",
    MAP: "a map",
    TIMESTAMP: "a timestamp",
    "duration": "a duration",
    NULL: "null",
    "type": "a type",
}


def binary(function: str, operands: list[Any], types: list[Type]) -> str:
    """Why two operands do not go together, and how to make them."""
    left, right = types
    shown = [text_of(operand) for operand in operands]
    if left.only(NULL) or right.only(NULL):
        return "one side is always null here"
    if function in ("_<_", "_<=_", "_>_", "_>=_"):
        return _ordering(function, operands, types, shown)
    if left.only(*NUMBERS) and right.only(*NUMBERS):
        return (
            "CEL does not mix number types in arithmetic: convert with double() or int() "
            "(or write 2.0 for a double)"
        )
    if function == "_+_" and left.only(STRING) and right.only(*NUMBERS):
        return f"convert the number with string(): {shown[0]} + string({shown[1]})"
    if function == "_+_" and right.only(STRING) and left.only(*NUMBERS):
        return f"convert the number with string(): string({shown[0]}) + {shown[1]}"
    if function == "_+_" and left.only(LIST) and not right.has(LIST):
        return f"add a list: {shown[0]} + [{shown[1]}]"
    if left.only(STRING) or right.only(STRING):
        return "convert the text with int() or double(), or the number with string()"
    return ""


def _ordering(function: str, operands: list[Any], types: list[Type], shown: list[str]) -> str:
    left, right = types
    operator = INFIX[function]
    for mine, other in ((1, 0), (0, 1)):
        if types[other].only(*NUMBERS) and types[mine].only(STRING):
            number = _number_in(operands[mine])
            if number is not None:
                parts = list(shown)
                parts[mine] = number
                return f"compare with a number: {parts[0]} {operator} {parts[1]}"
            return (
                f"convert the text with int() or double(): int({shown[mine]}), or the number "
                "with string()"
            )
    timestamp_side = 0 if left.only(TIMESTAMP) else 1 if right.only(TIMESTAMP) else None
    if timestamp_side is not None and types[1 - timestamp_side].only(STRING):
        return (
            f"a run holds times as text: compare timestamps, timestamp({shown[1 - timestamp_side]})"
        )
    if left.has(LIST, MAP) or right.has(LIST, MAP):
        return "lists and maps cannot be ordered: compare their sizes or their elements"
    return "compare values of the same kind"


def _number_in(operand: Any) -> str | None:
    """The number a text literal holds (``'3'`` -> ``3``), if it holds one."""
    if operand.WhichOneof("expr_kind") != "const_expr":
        return None
    text = operand.const_expr.string_value.strip()
    try:
        float(text)
    except ValueError:
        return None
    return text if text and text[0] not in "+" else None


def not_bool(shown: str, value: Type) -> str:
    if value.only(*NUMBERS):
        return f"compare it: {shown} > 0"
    if value.only(STRING):
        return f"compare it: {shown} == 'yes'"
    if value.only(LIST, MAP):
        return f"test its size: size({shown}) > 0"
    if value.only(NULL):
        return "it is always null here"
    return ""


def no_fields(shown: str, value: Type) -> str:
    if value.only(LIST):
        return f"take an element first: {shown}[0]"
    if value.only(STRING):
        return "it is text, not an object"
    return ""


def unknown_field(field: str, names: list[str]) -> str:
    close = difflib.get_close_matches(field, names, n=1)
    listed = ", ".join(names) if names else "none"
    guess = f"did you mean '{close[0]}'? " if close else ""
    return f"{guess}its fields: {listed}"


def not_iterable(shown: str, value: Type) -> str:
    if value.only(STRING):
        return (
            f"text is not a list: test it with contains() or matches(), e.g. {shown}.contains('x')"
        )
    return ""


def membership(operands: list[Any], container: Type) -> str:
    if container.only(STRING):
        return f"for text, write {text_of(operands[1])}.contains({text_of(operands[0])})"
    return ""


def index(shown: str, value: Type) -> str:
    if value.only(STRING):
        return "text cannot be indexed: use contains(), startsWith() or matches()"
    return ""


def function(name: str, shown: str, value: Type) -> str:
    if name == "size":
        return "size() takes text, bytes, a list or a map"
    if name in TEXT_METHODS and value.only(LIST):
        return f"for a list, write x in {shown}"
    if name in TEXT_METHODS:
        return f"{name}() applies to text: convert with string({shown}) first"
    if name.startswith("get") and value.has(STRING):
        return f"a run holds times as text: convert it first, timestamp({shown}).{name}()"
    if name in CONVERSIONS:
        accepted, _ = FUNCTIONS[(name, 1)]
        words = sorted(_KIND_WORDS.get(kind, kind) for kind in accepted[0])
        return f"{name}() takes {', '.join(words)}"
    return ""
