"""Save-time type checks of CEL expressions (``when``, ``compute``) over what a definition
says of its variables' types (workflows/value_types.py).

A small inference over the parsed tree (``cel.expr.Expr``, before the engine's rewrite): each
node gets the kinds its value may have; an operation is reported only when no combination of
its operands' kinds works (workflows/cel_ops.py), so a report means the expression fails
whenever that part of it runs. Unknown types (:data:`DYN`) never report anything, and a part
that has failed gives :data:`NEVER` to its parents, so one mistake is one report.

``has(x.f)`` (or ``'f' in x``) anywhere in the expression makes ``x.f`` acceptable on a map
that cannot hold ``f``. ``dyn(x)`` makes ``x`` unknown: a way to tell the check to trust the
author.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from cel_expr_python import cel
from google.protobuf import any_pb2

from workflows import cel_calls, cel_hints
from workflows.cel_ast import TWO_VARIABLE_MACROS, TYPE_NAMES, free_names
from workflows.cel_calls import Report
from workflows.cel_ops import BINARY, FUNCTIONS, UNARY
from workflows.cel_syntax import message_class
from workflows.cel_text import INFIX, children, constant_text, macro_name, root_name, text_of
from workflows.value_types import (
    BOOL,
    BOOL_T,
    BYTES,
    DOUBLE,
    DURATION,
    DYN,
    INT_T,
    LIST,
    MAP,
    NEVER,
    NULL,
    STRING_T,
    TIMESTAMP,
    TYPE,
    UINT,
    Type,
    a,
    describe,
    join,
    join_all,
    list_of,
    map_of,
    scalar,
)

Scope = Mapping[str, Type]


@dataclass(frozen=True)
class Finding:
    """A part of an expression that fails whenever it runs."""

    offset: int  # in code points, where the part is
    message: str
    hint: str = ""
    names: tuple[str, ...] = ()  # the variables it is about (their origins make a hint)
    code: str = "type_error"


@cache
def _parser() -> Any:
    return cel.NewEnv()


@lru_cache(maxsize=2048)
def parsed(expression: str) -> Any | None:
    """The expression's ``cel.expr.ParsedExpr``, or None if it does not parse (reported
    elsewhere)."""
    try:
        serialized = _parser().compile(expression, disable_check=True).serialize()
    except Exception:  # the parser's RuntimeError, text it cannot take: the CEL checks say it
        return None
    wrapped = any_pb2.Any.FromString(serialized)
    return message_class("ParsedExpr").FromString(wrapped.value)


@lru_cache(maxsize=2048)
def names_read(expression: str) -> frozenset[str]:
    tree = parsed(expression)
    return frozenset() if tree is None else frozenset(free_names(tree.expr))


def infer(expression: str, scope: Scope) -> tuple[Type, tuple[Finding, ...]]:
    """The type of the expression's value, and the parts of it that fail whenever they run."""
    known = tuple(sorted((name, scope[name]) for name in names_read(expression) if name in scope))
    return _infer(expression, known)


@lru_cache(maxsize=4096)
def _infer(
    expression: str, known: tuple[tuple[str, Type], ...]
) -> tuple[Type, tuple[Finding, ...]]:
    tree = parsed(expression)
    if tree is None:
        return DYN, ()
    inference = _Inference(tree, dict(known))
    result = inference.type_of(tree.expr, {})
    return result, tuple(inference.findings)


def position(expression: str, offset: int) -> tuple[int, int]:
    """(line, column), from 1, of a code-point offset."""
    before = expression[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


class _Inference:
    """One expression's types; ``findings`` collects what fails."""

    def __init__(self, tree: Any, variables: Scope) -> None:
        self._variables = variables
        self._positions = tree.source_info.positions
        self._guarded = _guards(tree.expr)
        self._macros: list[str] = []  # the macros being expanded, innermost last
        self._macro_names = _macro_variables(tree.expr)  # no origin hints for these
        self.findings: list[Finding] = []

    def type_of(self, node: Any, local: Scope) -> Type:
        kind = node.WhichOneof("expr_kind")
        if kind == "const_expr":
            return _constant(node.const_expr)
        if kind == "ident_expr":
            return self._ident(node.ident_expr.name, local)
        if kind == "select_expr":
            return self._select(node, local)
        if kind == "call_expr":
            return self._call(node, local)
        if kind == "list_expr":
            return list_of(join_all(self.type_of(e, local) for e in node.list_expr.elements))
        if kind == "struct_expr":
            return self._struct(node.struct_expr, local)
        if kind == "comprehension_expr":
            return self._comprehension(node, local)
        return DYN

    def find(self, node: Any, message: str, hint: str = "", *about: Any, code: str = "") -> None:
        roots = (root_name(x) for x in about)
        names = tuple(n for n in roots if n is not None and n not in self._macro_names)
        offset = int(self._positions.get(node.id, 0))
        self.findings.append(Finding(offset, message, hint, names, code or "type_error"))

    def _not_iterable(self, node: Any, macro: str, over_node: Any, over: Type) -> bool:
        """Report a macro over something neither a list nor a map; True if it did."""
        if over.never or over.has(LIST, MAP):
            return False
        self.find(
            node,
            f"{macro}() iterates over {text_of(over_node)}, {a(over)}: macros iterate "
            "over a list or a map, so this fails whenever it runs",
            cel_hints.not_iterable(text_of(over_node), over),
            over_node,
        )
        return True

    def _ident(self, name: str, local: Scope) -> Type:
        if name in local:
            return local[name]
        if name in self._variables:
            return self._variables[name]
        return scalar(TYPE) if name in TYPE_NAMES else DYN

    def _select(self, node: Any, local: Scope) -> Type:
        s = node.select_expr
        operand = self.type_of(s.operand, local)
        if operand.never or operand.dynamic:
            return BOOL_T if s.test_only else DYN
        shown = text_of(s.operand)
        if MAP not in operand.kinds:
            self.find(
                node,
                f"{text_of(node)} reads the field '{s.field}' of {shown}, {a(operand)}, "
                "which has no fields: this fails whenever it runs",
                cel_hints.no_fields(shown, operand),
                s.operand,
            )
            return NEVER
        if s.test_only:
            return BOOL_T
        found = operand.field(s.field)
        if found is not None:
            return found
        if (shown, s.field) not in self._guarded:
            self.find(
                node,
                f"{shown} has no field '{s.field}': it is {a(operand)}",
                cel_hints.unknown_field(s.field, operand.field_names()),
                s.operand,
                code="unknown_field",
            )
        return NEVER

    def _struct(self, struct: Any, local: Scope) -> Type:
        if struct.message_name:
            return DYN
        fields: dict[str, Type] = {}
        keys: list[Type] = []
        others: list[Type] = []
        for entry in struct.entries:
            value = self.type_of(entry.value, local)
            if not entry.HasField("map_key"):
                return DYN
            key = self.type_of(entry.map_key, local)
            keys.append(key)
            constant = entry.map_key.WhichOneof("expr_kind") == "const_expr"
            if constant and entry.map_key.const_expr.WhichOneof("constant_kind") == "string_value":
                fields[entry.map_key.const_expr.string_value] = value
            else:
                others.append(value)
        made = map_of(join_all(keys), join_all(others))
        return Type(made.kinds, fields=tuple(sorted(fields.items())), rest=made.rest, key=made.key)

    def _comprehension(self, node: Any, local: Scope) -> Type:
        c = node.comprehension_expr
        over = self.type_of(c.iter_range, local)
        if self._not_iterable(node, macro_name(c), c.iter_range, over):
            return NEVER
        inner = dict(local)
        inner[c.iter_var] = _iteration(over, first=True)
        if c.iter_var2:
            inner[c.iter_var2] = _iteration(over, first=False)
        # The parser's macros build their accumulator so that one pass settles its type:
        # `@result + [e]` over an empty list gives a list of e's type.
        start = self.type_of(c.accu_init, local)
        self._macros.append(macro_name(c))
        step = self.type_of(c.loop_step, {**inner, c.accu_var: start})
        self._macros.pop()
        accumulated = join(start, step)
        self.type_of(c.loop_condition, {**inner, c.accu_var: accumulated})
        return self.type_of(c.result, {**local, c.accu_var: accumulated})

    def _call(self, node: Any, local: Scope) -> Type:
        call = node.call_expr
        function = call.function
        if function in ("_&&_", "_||_") and len(call.args) == 2:
            return self._logical(node, local)
        if function == "_?_:_" and len(call.args) == 3:
            return self._choice(node, local)
        if function in TWO_VARIABLE_MACROS and _two_variable(call):
            return self._two_variable(node, local)
        operands = ([call.target] if call.HasField("target") else []) + list(call.args)
        types = [self.type_of(operand, local) for operand in operands]
        if any(t.never for t in types):
            return NEVER  # a part that failed already, or never runs
        if function in ("_==_", "_!=_", "@not_strictly_false"):
            return BOOL_T
        if function == "dyn" and len(types) == 1:
            return DYN
        checked = _checked_call(node, operands, types)
        if isinstance(checked, Report):
            self.find(node, checked.message, checked.hint, *checked.about)
            return NEVER
        return checked

    def _logical(self, node: Any, local: Scope) -> Type:
        call = node.call_expr
        left, right = (self.type_of(arg, local) for arg in call.args)
        operator = INFIX[call.function]
        first = call.args[0]
        if first.WhichOneof("expr_kind") == "ident_expr" and first.ident_expr.name.startswith("@"):
            # all()/exists() as the parser expands them: `@result && predicate`
            if not right.never and not right.has(BOOL):
                macro = "all" if operator == "&&" else "exists"
                self.find(
                    call.args[1],
                    f"the condition of {macro}() gives {a(right)}, not a bool: this fails "
                    "whenever the list or map is not empty",
                    cel_hints.not_bool(text_of(call.args[1]), right),
                    call.args[1],
                )
            return BOOL_T
        if left.never or right.never or left.has(BOOL) or right.has(BOOL):
            return BOOL_T
        self.find(
            node,
            f"'{operator}' joins {text_of(call.args[0])} ({describe(left)}) and "
            f"{text_of(call.args[1])} ({describe(right)}), neither of which is a bool: this "
            "fails whenever it runs",
            "compare each side, e.g. x > 0 && s != ''",
            *call.args,
        )
        return NEVER

    def _choice(self, node: Any, local: Scope) -> Type:
        condition, then, otherwise = node.call_expr.args
        test = self.type_of(condition, local)
        chosen = join(self.type_of(then, local), self.type_of(otherwise, local))
        if test.never or test.has(BOOL):
            return chosen
        accumulator = otherwise.WhichOneof("expr_kind") == "ident_expr" and (
            otherwise.ident_expr.name.startswith("@")
        )
        macro = self._macros[-1] if self._macros else "macro"
        what = (
            f"the condition of {macro}()"
            if accumulator
            else (f"the condition of '{text_of(condition)} ? …'")
        )
        self.find(
            condition,
            f"{what} is {a(test)}, not a bool: this fails whenever it runs",
            cel_hints.not_bool(text_of(condition), test),
            condition,
        )
        return NEVER

    def _two_variable(self, node: Any, local: Scope) -> Type:
        """``r.all(i, v, p)``, ``exists``, ``existsOne``, ``transformList``, ``transformMap``:
        over a list, index and element; over a map, key and value."""
        call = node.call_expr
        over = self.type_of(call.target, local)
        function = call.function
        if self._not_iterable(node, function, call.target, over):
            return NEVER
        first, second = (arg.ident_expr.name for arg in call.args[:2])
        inner = {**local, first: _iteration(over, True, True), second: _iteration(over, False)}
        body = [self.type_of(arg, inner) for arg in call.args[2:]]
        predicate = len(body) == 2 or function not in ("transformList", "transformMap")
        if predicate and not body[0].never and not body[0].has(BOOL):
            self.find(
                call.args[2],
                f"the condition of {function}() gives {a(body[0])}, not a bool: this fails "
                "whenever the list or map is not empty",
                cel_hints.not_bool(text_of(call.args[2]), body[0]),
                call.args[2],
            )
        if function == "transformList":
            return list_of(body[-1])
        if function == "transformMap":
            return map_of(_iteration(over, True, True), body[-1])
        return BOOL_T


def _checked_call(node: Any, operands: list[Any], types: list[Type]) -> Type | Report:
    function = node.call_expr.function
    count = len(types)
    if function in BINARY and count == 2:
        return cel_calls.binary_call(node, operands, types)
    if function == "@in" and count == 2:
        return cel_calls.membership_call(node, operands, types)
    if function == "_[_]" and count == 2:
        return cel_calls.index_call(node, operands, types)
    if function in UNARY and count == 1:
        return cel_calls.unary_call(node, operands[0], types[0])
    if (function, count) in FUNCTIONS:
        return cel_calls.function_call(node, operands, types)
    return DYN


def _constant(constant: Any) -> Type:
    kind = constant.WhichOneof("constant_kind")
    return {
        "null_value": scalar(NULL),
        "bool_value": BOOL_T,
        "int64_value": INT_T,
        "uint64_value": scalar(UINT),
        "double_value": scalar(DOUBLE),
        "string_value": STRING_T,
        "bytes_value": scalar(BYTES),
        "duration_value": scalar(DURATION),
        "timestamp_value": scalar(TIMESTAMP),
    }.get(kind or "", DYN)


def _iteration(over: Type, first: bool, two: bool = False) -> Type:
    """What a macro binds while iterating ``over``: a list's elements (with two variables:
    its indexes, then its elements), a map's keys (with two: its keys, then its values)."""
    bound: list[Type] = []
    if LIST in over.kinds:
        bound.append(INT_T if first and two else over.element())
    if MAP in over.kinds:
        bound.append(over.keys() if first else over.values())
    return join_all(bound)


def _two_variable(call: Any) -> bool:
    if not call.HasField("target"):
        return False
    arities = (3, 4) if call.function in ("transformList", "transformMap") else (3,)
    return len(call.args) in arities and all(
        arg.WhichOneof("expr_kind") == "ident_expr" for arg in call.args[:2]
    )


def _macro_variables(expr: Any) -> frozenset[str]:
    """Every name a macro binds somewhere in the expression."""
    found: set[str] = set()
    work = [expr]
    while work:
        node = work.pop()
        kind = node.WhichOneof("expr_kind")
        if kind == "comprehension_expr":
            c = node.comprehension_expr
            found.update((c.iter_var, c.iter_var2, c.accu_var))
        elif kind == "call_expr" and _two_variable(node.call_expr):
            found.update(arg.ident_expr.name for arg in node.call_expr.args[:2])
        work.extend(children(node))
    return frozenset(found)


def _guards(expr: Any) -> set[tuple[str, str]]:
    """(operand text, field) of every ``has(x.f)`` and ``'f' in x`` in the expression."""
    found: set[tuple[str, str]] = set()
    work = [expr]
    while work:
        node = work.pop()
        kind = node.WhichOneof("expr_kind")
        if kind == "select_expr" and node.select_expr.test_only:
            found.add((text_of(node.select_expr.operand), node.select_expr.field))
        elif kind == "call_expr" and node.call_expr.function == "@in":
            key, container = node.call_expr.args
            if key.WhichOneof("expr_kind") == "const_expr":
                found.add((text_of(container), key.const_expr.string_value))
        work.extend(children(node))
    return found


__all__ = ["Finding", "constant_text", "infer", "names_read", "parsed", "position"]
