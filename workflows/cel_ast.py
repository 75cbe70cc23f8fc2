"""What the engine reads from and changes in a CEL syntax tree (``cel.expr.ParsedExpr``).

- :func:`free_names`: the names an expression reads (of the rewritten tree). Names bound by a
  comprehension (``items.exists(x, x > 2)``'s ``x``) are not among them, even when the context
  also holds an ``x``. Type names (``int``, ``string``...: :data:`TYPE_NAMES`) are, and the
  caller reads them as variables only when the run holds one so named.
- :func:`rewrite` makes iteration deterministic and adds the two-variable comprehensions:

  * A map is iterated in sorted key order: every comprehension's range ``r`` becomes
    ``@r := r; type(@r) == type({}) ? @sorted_keys(@r, size(@r)) : @r`` (workflows.cel_values
    has the order). The runtime's own map order is a hash order that differs between
    processes, so ``m.map(k, k)`` could give another list on replay or on another worker. Lists
    are left alone (no call back into Python for them), list literals are not even wrapped.
  * ``r.all(i, v, p)``, ``exists``, ``existsOne``/``exists_one``, ``transformList(i, v, [p,] f)``
    and ``transformMap(i, v, [p,] f)`` (cel-spec's comprehensions v2, which this runtime does
    not expand) become comprehensions the runtime runs: over a list natively (index, element);
    over a map through its sorted keys, ``k`` and ``v`` bound to each key and its value.

A binding (``@r := x; body``) is a comprehension over an empty list whose accumulator is the
bound name, as CEL's own ``cel.bind`` is expanded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from workflows.cel_syntax import message_class
from workflows.errors import EngineError

# Type names an identifier resolves to when no variable has that name.
TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "dyn", "int", "list", "map", "null_type", "string", "type", "uint"}
)
SORTED_KEYS = "@sorted_keys"  # a helper function (workflows.cel_conformant registers it)
TO_MAP = "@to_map"  # transformMap's result from [key, value] pairs, also a helper function
TWO_VARIABLE_MACROS = frozenset(
    {"all", "exists", "existsOne", "exists_one", "transformList", "transformMap"}
)
MAX_TWO_VARIABLE_NESTING = 4  # each level doubles the tree (a map branch and a list branch)


def free_names(expr: Any) -> set[str]:
    """Identifiers read and not bound by an enclosing comprehension (``@`` names excluded)."""
    found: set[str] = set()
    work: list[tuple[Any, frozenset[str]]] = [(expr, frozenset())]
    while work:
        node, bound = work.pop()
        kind = node.WhichOneof("expr_kind")
        if kind == "ident_expr":
            name = node.ident_expr.name
            if name not in bound and not name.startswith("@"):
                found.add(name)
        elif kind == "comprehension_expr":
            c = node.comprehension_expr
            inner = bound | {c.iter_var, c.iter_var2, c.accu_var}
            work += [(c.iter_range, bound), (c.accu_init, bound), (c.result, bound | {c.accu_var})]
            work += [(c.loop_condition, inner), (c.loop_step, inner)]
        else:
            work += [(child, bound) for child in _children(node)]
    return found


def _children(node: Any) -> Iterator[Any]:
    kind = node.WhichOneof("expr_kind")
    if kind == "select_expr":
        yield node.select_expr.operand
    elif kind == "call_expr":
        if node.call_expr.HasField("target"):
            yield node.call_expr.target
        yield from node.call_expr.args
    elif kind == "list_expr":
        yield from node.list_expr.elements
    elif kind == "struct_expr":
        for entry in node.struct_expr.entries:
            if entry.HasField("map_key"):
                yield entry.map_key
            yield entry.value
    elif kind == "comprehension_expr":
        c = node.comprehension_expr
        yield from (c.iter_range, c.accu_init, c.loop_condition, c.loop_step, c.result)


class NotSupported(EngineError, ValueError):
    """An expression the rewrite refuses (the message says why, for the person who wrote it)."""


def rewrite(parsed: Any) -> Any:
    """A copy of ``parsed`` with deterministic map iteration and two-variable comprehensions."""
    copy = message_class("ParsedExpr")()
    copy.CopyFrom(parsed)
    _Rewriter(_max_id(copy.expr)).visit(copy.expr)
    return copy


def _max_id(expr: Any) -> int:
    highest = 0
    work = [expr]
    while work:
        node = work.pop()
        highest = max(highest, node.id)
        work.extend(_children(node))
    return highest


class _Rewriter:
    """Rewrites a tree in place; new nodes get ids above the parser's."""

    def __init__(self, last_id: int) -> None:
        self._id = last_id

    # -- node builders --------------------------------------------------------------------

    def node(self) -> Any:
        self._id += 1
        made = message_class("Expr")()
        made.id = self._id
        return made

    def ident(self, name: str) -> Any:
        made = self.node()
        made.ident_expr.name = name
        return made

    def const(self, **value: Any) -> Any:
        made = self.node()
        for field, v in value.items():
            setattr(made.const_expr, field, v)
        return made

    def call(self, function: str, *args: Any, target: Any = None) -> Any:
        made = self.node()
        made.call_expr.function = function
        if target is not None:
            made.call_expr.target.CopyFrom(target)
        for arg in args:
            made.call_expr.args.add().CopyFrom(arg)
        return made

    def list_of(self, *elements: Any) -> Any:
        made = self.node()
        made.list_expr.SetInParent()
        for element in elements:
            made.list_expr.elements.add().CopyFrom(element)
        return made

    def empty_map(self) -> Any:
        made = self.node()
        made.struct_expr.SetInParent()
        return made

    def comprehension(self, **parts: Any) -> Any:
        made = self.node()
        c = made.comprehension_expr
        for field in ("iter_var", "iter_var2", "accu_var"):
            setattr(c, field, parts.get(field, ""))
        for field in ("iter_range", "accu_init", "loop_condition", "loop_step", "result"):
            getattr(c, field).CopyFrom(parts[field])
        return made

    def bind(self, name: str, value: Any, body: Any) -> Any:
        """``name := value; body`` (CEL's ``cel.bind`` expansion)."""
        return self.comprehension(
            iter_var="#unused",
            iter_range=self.list_of(),
            accu_var=name,
            accu_init=value,
            loop_condition=self.const(bool_value=False),
            loop_step=self.ident(name),
            result=body,
        )

    def sorted_keys(self, name: str) -> Any:
        """The map's keys in order; its size goes along, so the helper can tell when Python,
        where ``True == 1``, merged two of its keys."""
        return self.call(SORTED_KEYS, self.ident(name), self.call("size", self.ident(name)))

    def is_map(self, name: str) -> Any:
        return self.call(
            "_==_", self.call("type", self.ident(name)), self.call("type", self.empty_map())
        )

    # -- the rewrite ------------------------------------------------------------------------

    def visit(self, node: Any, nesting: int = 0) -> None:
        """Children first, so a range or a macro's body is already rewritten when moved."""
        kind = node.WhichOneof("expr_kind")
        macro = kind == "call_expr" and _two_variable_macro(node.call_expr)
        if macro and nesting >= MAX_TWO_VARIABLE_NESTING:
            raise NotSupported(
                f"two-variable comprehensions nest at most {MAX_TWO_VARIABLE_NESTING} deep"
            )
        for child in list(_children(node)):
            self.visit(child, nesting + macro)
        if kind == "comprehension_expr":
            self._sort_range(node.comprehension_expr)
        elif macro:
            node.CopyFrom(self._expand(node.call_expr))

    def _sort_range(self, c: Any) -> None:
        if c.iter_range.WhichOneof("expr_kind") == "list_expr":
            return  # a list literal (a binding's too) keeps its order
        range_ = message_class("Expr")()
        range_.CopyFrom(c.iter_range)
        sorted_range = self.call(
            "_?_:_", self.is_map("@r"), self.sorted_keys("@r"), self.ident("@r")
        )
        c.iter_range.CopyFrom(self.bind("@r", range_, sorted_range))

    def _expand(self, call: Any) -> Any:
        """``r.m(i, v, ...)``: over a map, the sorted keys; over a list, index and element."""
        key, value = call.args[0].ident_expr.name, call.args[1].ident_expr.name
        body = list(call.args[2:])
        over_map = self._macro(
            call.function, "@i", "@k", [self._bound(key, value, b) for b in body]
        )
        over_map.comprehension_expr.iter_range.CopyFrom(self.sorted_keys("@m"))
        over_list = self._macro(call.function, key, value, body)
        over_list.comprehension_expr.iter_range.CopyFrom(self.ident("@m"))
        choice = self.call("_?_:_", self.is_map("@m"), over_map, over_list)
        return self.bind("@m", call.target, choice)

    def _bound(self, key: str, value: str, body: Any) -> Any:
        """``body`` with the map's key and value bound to the macro's two names."""
        entry = self.call("_[_]", self.ident("@m"), self.ident("@k"))
        return self.bind(key, self.ident("@k"), self.bind(value, entry, body))

    def _macro(self, function: str, var: str, var2: str, body: list[Any]) -> Any:
        """The comprehension of one macro (its range is set by the caller)."""
        accu = "@result"
        condition = self.const(bool_value=True)
        final = self.ident(accu)
        if function == "all":
            init = self.const(bool_value=True)
            condition = self.call("@not_strictly_false", self.ident(accu))
            step = self.call("_&&_", self.ident(accu), body[0])
        elif function == "exists":
            init = self.const(bool_value=False)
            condition = self.call("@not_strictly_false", self.call("!_", self.ident(accu)))
            step = self.call("_||_", self.ident(accu), body[0])
        elif function in ("existsOne", "exists_one"):
            init = self.const(int64_value=0)
            more = self.call("_+_", self.ident(accu), self.const(int64_value=1))
            step = self.call("_?_:_", body[0], more, self.ident(accu))
            final = self.call("_==_", self.ident(accu), self.const(int64_value=1))
        else:
            init = self.list_of()
            step = self.call(
                "_+_", self.ident(accu), self.list_of(self._element(function, var, body[-1]))
            )
            if len(body) == 2:  # with a filter
                step = self.call("_?_:_", body[0], step, self.ident(accu))
            if function == "transformMap":
                final = self.call(TO_MAP, final)
        return self.comprehension(
            iter_var=var,
            iter_var2=var2,
            iter_range=self.list_of(),  # replaced by the caller
            accu_var=accu,
            accu_init=init,
            loop_condition=condition,
            loop_step=step,
            result=final,
        )

    def _element(self, function: str, var: str, value: Any) -> Any:
        """transformList collects values; transformMap [key, value] pairs, keyed as the range
        is (a map's keys, a list's indexes), made a map at the end (one call, not one a step)."""
        if function == "transformList":
            return value
        return self.list_of(self.ident("@k" if var == "@i" else var), value)


def _two_variable_macro(call: Any) -> bool:
    if not call.HasField("target") or call.function not in TWO_VARIABLE_MACROS:
        return False
    arities = (3, 4) if call.function in ("transformList", "transformMap") else (3,)
    return len(call.args) in arities and all(
        arg.WhichOneof("expr_kind") == "ident_expr" for arg in call.args[:2]
    )
