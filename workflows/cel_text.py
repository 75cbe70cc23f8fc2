"""A CEL syntax tree (``cel.expr.Expr``) written back as text, for messages about a part of
an expression (``n > '3'``, ``order.items.all(...)``). Short and readable rather than exact:
long parts are cut with an ellipsis, macros show their name and range only."""

from __future__ import annotations

import math
from typing import Any

INFIX = {
    "_+_": "+",
    "_-_": "-",
    "_*_": "*",
    "_/_": "/",
    "_%_": "%",
    "_<_": "<",
    "_<=_": "<=",
    "_>_": ">",
    "_>=_": ">=",
    "_==_": "==",
    "_!=_": "!=",
    "_&&_": "&&",
    "_||_": "||",
    "@in": "in",
}
MAX_TEXT = 48


def text_of(node: Any, limit: int = MAX_TEXT) -> str:
    """The node as CEL text, at most ``limit`` characters."""
    text = _text(node, 0)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(node: Any, depth: int) -> str:
    if depth > 12:
        return "…"
    kind = node.WhichOneof("expr_kind")
    if kind == "const_expr":
        return constant_text(node.const_expr)
    if kind == "ident_expr":
        return str(node.ident_expr.name)
    if kind == "select_expr":
        s = node.select_expr
        chain = f"{_text(s.operand, depth + 1)}.{s.field}"
        return f"has({chain})" if s.test_only else chain
    if kind == "call_expr":
        return _call_text(node.call_expr, depth)
    if kind == "list_expr":
        return "[" + ", ".join(_text(e, depth + 1) for e in node.list_expr.elements) + "]"
    if kind == "struct_expr":
        entries = node.struct_expr.entries
        return "{" + ("…" if entries else "") + "}"
    if kind == "comprehension_expr":
        c = node.comprehension_expr
        return f"{_text(c.iter_range, depth + 1)}.{macro_name(c)}(…)"
    return "…"


def _call_text(call: Any, depth: int) -> str:
    args = [_operand(a, depth) for a in call.args]
    function = call.function
    if function in INFIX and len(args) == 2:
        return f"{args[0]} {INFIX[function]} {args[1]}"
    if function in ("!_", "-_") and len(args) == 1:
        return function[0] + args[0]
    if function == "_[_]" and len(args) == 2:
        return f"{args[0]}[{_text(call.args[1], depth + 1)}]"
    if function == "_?_:_" and len(args) == 3:
        return f"{args[0]} ? {args[1]} : {args[2]}"
    inner = ", ".join(_text(a, depth + 1) for a in call.args)
    if call.HasField("target"):
        return f"{_operand(call.target, depth)}.{function}({inner})"
    return f"{function}({inner})"


def _operand(node: Any, depth: int) -> str:
    """An operand, in parentheses when it is itself an operation."""
    text = _text(node, depth + 1)
    if node.WhichOneof("expr_kind") == "call_expr":
        function = node.call_expr.function
        if function in INFIX or function == "_?_:_":
            return f"({text})"
    return text


def constant_text(constant: Any) -> str:
    kind = constant.WhichOneof("constant_kind")
    value: Any = getattr(constant, kind) if kind else None
    if kind == "string_value":
        escaped = str(value).replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        return f"'{escaped}'"
    if kind == "bool_value":
        return "true" if value else "false"
    if kind == "uint64_value":
        return f"{value}u"
    if kind == "double_value":
        return repr(value) if math.isfinite(value) else "double(…)"
    if kind == "int64_value":
        return str(value)
    if kind == "bytes_value":
        return "b'…'"
    return "null"


def macro_name(c: Any) -> str:
    """Which macro a comprehension was written as, from the parser's expansion of it."""
    init = c.accu_init
    kind = init.WhichOneof("expr_kind")
    if kind == "const_expr":
        constant = init.const_expr.WhichOneof("constant_kind")
        if constant == "bool_value":
            return "all" if init.const_expr.bool_value else "exists"
        return "exists_one"
    if kind == "list_expr":
        step = c.loop_step
        if step.WhichOneof("expr_kind") == "call_expr" and step.call_expr.function == "_?_:_":
            added = step.call_expr.args[1]
            if _appends_iteration_variable(added, c.iter_var):
                return "filter"
        return "map"
    return "macro"


def _appends_iteration_variable(node: Any, name: str) -> bool:
    if node.WhichOneof("expr_kind") != "call_expr" or len(node.call_expr.args) != 2:
        return False
    listed = node.call_expr.args[1]
    if listed.WhichOneof("expr_kind") != "list_expr" or len(listed.list_expr.elements) != 1:
        return False
    element = listed.list_expr.elements[0]
    return element.WhichOneof("expr_kind") == "ident_expr" and element.ident_expr.name == name


def root_name(node: Any) -> str | None:
    """The variable a chain of selections and indexes starts from (``r`` of ``r.json.a[0]``)."""
    while True:
        kind = node.WhichOneof("expr_kind")
        if kind == "ident_expr":
            name = str(node.ident_expr.name)
            return None if name.startswith("@") else name
        if kind == "select_expr":
            node = node.select_expr.operand
        elif kind == "call_expr" and node.call_expr.function == "_[_]":
            node = node.call_expr.args[0]
        else:
            return None


def children(node: Any) -> list[Any]:
    """The nodes directly under ``node``."""
    kind = node.WhichOneof("expr_kind")
    if kind == "select_expr":
        return [node.select_expr.operand]
    if kind == "call_expr":
        call = node.call_expr
        return ([call.target] if call.HasField("target") else []) + list(call.args)
    if kind == "list_expr":
        return list(node.list_expr.elements)
    if kind == "struct_expr":
        found = []
        for entry in node.struct_expr.entries:
            if entry.HasField("map_key"):
                found.append(entry.map_key)
            found.append(entry.value)
        return found
    if kind == "comprehension_expr":
        c = node.comprehension_expr
        return [c.iter_range, c.accu_init, c.loop_condition, c.loop_step, c.result]
    return []
