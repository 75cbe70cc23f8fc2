"""A deterministic cost bound for CEL expressions, checked before each evaluation.

The CEL runtime (a Rust library) runs in the workflow thread and never releases the GIL, and
its ``map``/``filter`` macros take time quadratic in the list: ``items.map(x, x * 2)`` over
4,000 items takes ~0.85 s here, over 20,000 minutes, and every run on the worker stalls
meanwhile. A wall-clock timeout would not be replay-safe (a faster replay would decide
differently), so the bound is computed from the expression's shape and the size of the values
it reads, which are the same on every replay:

- each comprehension (``all``, ``exists``, ``exists_one``: linear; ``map``, ``filter``:
  quadratic in both CEL runtimes, docs/expressions.md) multiplies the work of everything
  inside it by the size of the largest list or map the expression can reach (the inputs it
  reads, or its own literals);
- comprehensions side by side add up;
- ``map``/``filter`` results and ``+`` concatenations can build values as large as that work
  times the largest string read, which bounds memory the same way.

Over ``MAX_EVALUATION_OPS`` or ``MAX_EVALUATION_BYTES`` the evaluation is refused with
"expression too costly", a ``ConditionError`` (the step fails ``InvalidCondition``).
Calibrated on this project's 2-core machine: 100,000 operations take ~40 ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from workflows.errors import ConditionError

MAX_EVALUATION_OPS = 100_000
MAX_EVALUATION_BYTES = 16 * 1024 * 1024
# existsOne, transformList and transformMap: the two-variable comprehensions of the conformant
# evaluator (workflows/cel_ast.py); the legacy one fails on them anyway, whatever this says.
_LINEAR = frozenset({"all", "exists", "exists_one", "existsOne"})
_QUADRATIC = frozenset({"map", "filter", "transformList", "transformMap"})
# One element step of map/filter costs ~1/6 of a linear macro's step (measured: map over
# 1,000 items 69 ms, exists over 4,000 items 1.7 ms), so their n*n counts as n*n/6.
_QUADRATIC_WEIGHT = 6


@dataclass(frozen=True)
class Shape:
    """What of an expression decides its cost: its comprehensions and concatenations."""

    chains: tuple[tuple[str, ...], ...]  # per comprehension: the macros from outermost to it
    concatenations: int  # `+` outside string literals
    literal_items: int  # commas and brackets: bounds the size of literal lists and maps


@lru_cache(maxsize=1024)
def shape_of(expression: str) -> Shape:
    """Scan the expression (string literals skipped) for macro calls and their nesting."""
    chains: list[tuple[str, ...]] = []
    stack: list[str | None] = []  # per open parenthesis: the macro it belongs to, if any
    concatenations = 0
    literal_items = 0
    i, n = 0, len(expression)
    while i < n:
        ch = expression[i]
        if ch in "'\"":
            i = _skip_string(expression, i)
            continue
        if ch == "(":
            macro = _macro_before(expression, i)
            stack.append(macro)
            if macro is not None:
                outer = tuple(m for m in stack[:-1] if m is not None)
                chains.append((*outer, macro))
        elif ch == ")":
            if stack:
                stack.pop()
        elif ch == "+":
            concatenations += 1
        elif ch in ",[{":
            literal_items += 1
        i += 1
    return Shape(tuple(chains), concatenations, literal_items)


def _skip_string(text: str, start: int) -> int:
    """Index just past the string literal starting at ``start`` (raw and triple quotes too)."""
    quote = text[start]
    raw = start > 0 and text[start - 1] in "rR"
    triple = text.startswith(quote * 3, start)
    end_token = quote * 3 if triple else quote
    i = start + len(end_token)
    while i < len(text):
        if not raw and text[i] == "\\":
            i += 2
            continue
        if text.startswith(end_token, i):
            return i + len(end_token)
        i += 1
    return len(text)


def _macro_before(text: str, paren: int) -> str | None:
    """`.map(` -> "map": the comprehension macro called at this parenthesis, if any."""
    j = paren - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    end = j + 1
    while j >= 0 and (text[j].isalnum() or text[j] == "_"):
        j -= 1
    name = text[j + 1 : end]
    k = j
    while k >= 0 and text[k].isspace():
        k -= 1
    if k >= 0 and text[k] == "." and name in _LINEAR | _QUADRATIC:
        return name
    return None


@dataclass(frozen=True)
class Size:
    """How big the values an expression reads are."""

    largest_collection: int = 0  # items of the largest list or map, at any depth
    largest_string: int = 0  # characters of the longest string (bytes of the longest bytes)
    total: int = 0  # every element, key and character counted once


def size_of(values: Iterable[Any]) -> Size:
    """Measured without recursion, so no input can exhaust the stack."""
    largest_collection = largest_string = total = 0
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str | bytes):
            largest_string = max(largest_string, len(value))
            total += len(value) + 1
        elif isinstance(value, Mapping):
            largest_collection = max(largest_collection, len(value))
            total += len(value)
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            largest_collection = max(largest_collection, len(value))
            total += len(value)
            stack.extend(value)
        else:
            total += 1
    return Size(largest_collection, largest_string, total)


def estimate(shape: Shape, size: Size) -> tuple[int, int]:
    """(operations, bytes) an evaluation may need at most, by the rules in the docstring."""
    n = max(size.largest_collection, shape.literal_items) + 1
    ops = 0
    built = 0
    for chain in shape.chains:
        work = 1
        for macro in chain:
            work *= n * n // _QUADRATIC_WEIGHT + n if macro in _QUADRATIC else n
        ops += work
        if chain[-1] in _QUADRATIC:
            built += work
    largest = max(size.largest_string, 1)
    memory = (built + shape.concatenations + 1) * largest + size.total
    return ops, memory


def check_budget(expression: str, values: Iterable[Any]) -> None:
    """Refuse an evaluation that could cost more than the budget (see the module docstring)."""
    shape = shape_of(expression)
    if not shape.chains and not shape.concatenations:
        return  # no loop and no growth: linear in what it reads, which is already bounded
    size = size_of(values)
    ops, memory = estimate(shape, size)
    if ops > MAX_EVALUATION_OPS or memory > MAX_EVALUATION_BYTES:
        macros = ", ".join(sorted({m for chain in shape.chains for m in chain})) or "+"
        raise ConditionError(
            f"expression too costly: {expression[:120]!r} uses {macros} over values with "
            f"{size.largest_collection} items in the largest list or map, which could take "
            f"~{ops:,} operations and ~{memory:,} bytes (limits {MAX_EVALUATION_OPS:,} and "
            f"{MAX_EVALUATION_BYTES:,}); reduce the list in an earlier step, or use "
            "exists/all (linear) instead of map/filter (quadratic here)"
        )
