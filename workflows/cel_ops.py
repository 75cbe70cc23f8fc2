"""What CEL's operators and functions accept, by the kinds of their operands (as the runtime,
cel-expr-python, answers: tests/test_definition_types.py checks each row against it).

Each table lists the pairs (or argument kinds) that *work*; an operation whose operands' kinds
allow no listed combination fails whenever it runs, and only that is reported at save
(workflows/cel_types.py). ``==`` and ``!=`` are not here: they compare any two values.
"""

from __future__ import annotations

from workflows.value_types import (
    BOOL,
    BYTES,
    DOUBLE,
    DURATION,
    INT,
    KINDS,
    LIST,
    MAP,
    NUMBERS,
    STRING,
    TIMESTAMP,
    UINT,
)

Pairs = dict[tuple[str, str], str]


def _same(*kinds: str) -> Pairs:
    return {(kind, kind): kind for kind in kinds}


_ARITHMETIC = _same(INT, UINT, DOUBLE)
BINARY: dict[str, Pairs] = {
    "_+_": {
        **_same(INT, UINT, DOUBLE, STRING, BYTES, LIST, DURATION),
        (TIMESTAMP, DURATION): TIMESTAMP,
        (DURATION, TIMESTAMP): TIMESTAMP,
    },
    "_-_": {
        **_same(INT, UINT, DOUBLE, DURATION),
        (TIMESTAMP, TIMESTAMP): DURATION,
        (TIMESTAMP, DURATION): TIMESTAMP,
    },
    "_*_": _ARITHMETIC,
    "_/_": _ARITHMETIC,
    "_%_": _same(INT, UINT),
}
# Ordering: numbers of any kinds with each other (CEL compares int, uint and double), and
# two values of one of these kinds.
_ORDERING: Pairs = {
    **{(a, b): BOOL for a in NUMBERS for b in NUMBERS},
    **{(k, k): BOOL for k in (STRING, BOOL, BYTES, TIMESTAMP, DURATION)},
}
for _operator in ("_<_", "_<=_", "_>_", "_>=_"):
    BINARY[_operator] = _ORDERING

VERBS = {
    "_+_": "add",
    "_-_": "subtract",
    "_*_": "multiply",
    "_/_": "divide",
    "_%_": "take the remainder of",
    "_<_": "compare",
    "_<=_": "compare",
    "_>_": "compare",
    "_>=_": "compare",
}

UNARY: dict[str, frozenset[str]] = {"-_": frozenset({INT, DOUBLE}), "!_": frozenset({BOOL})}

_TEXT = frozenset({STRING})
_SIZED = frozenset({STRING, BYTES, LIST, MAP})
_TIMES = frozenset({TIMESTAMP, DURATION})
_DATES = frozenset({TIMESTAMP})

# (name, arguments with the receiver first) -> the kinds each argument may have, the result's
# kind (None: the argument's own type, for dyn()). A receiver-style call (``s.size()``) and a
# global one (``size(s)``) read the same row.
FUNCTIONS: dict[tuple[str, int], tuple[tuple[frozenset[str], ...], str | None]] = {
    ("size", 1): ((_SIZED,), INT),
    ("contains", 2): ((_TEXT, _TEXT), BOOL),
    ("startsWith", 2): ((_TEXT, _TEXT), BOOL),
    ("endsWith", 2): ((_TEXT, _TEXT), BOOL),
    ("matches", 2): ((_TEXT, _TEXT), BOOL),
    ("int", 1): ((frozenset({INT, UINT, DOUBLE, STRING, BOOL, TIMESTAMP}),), INT),
    ("uint", 1): ((frozenset({INT, UINT, DOUBLE, STRING, BOOL}),), UINT),
    ("double", 1): ((frozenset({INT, UINT, DOUBLE, STRING}),), DOUBLE),
    ("string", 1): (
        (frozenset({INT, UINT, DOUBLE, STRING, BOOL, BYTES, TIMESTAMP, DURATION}),),
        STRING,
    ),
    ("bool", 1): ((frozenset({BOOL, STRING}),), BOOL),
    ("bytes", 1): ((frozenset({BYTES, STRING}),), BYTES),
    ("timestamp", 1): ((frozenset({STRING, TIMESTAMP, INT}),), TIMESTAMP),
    ("duration", 1): ((frozenset({STRING, DURATION}),), DURATION),
    ("type", 1): ((KINDS,), "type"),
}
for _getter in ("getFullYear", "getMonth", "getDayOfYear", "getDayOfMonth", "getDate"):
    FUNCTIONS[(_getter, 1)] = ((_DATES,), INT)
    FUNCTIONS[(_getter, 2)] = ((_DATES, _TEXT), INT)
FUNCTIONS[("getDayOfWeek", 1)] = ((_DATES,), INT)
FUNCTIONS[("getDayOfWeek", 2)] = ((_DATES, _TEXT), INT)
for _getter in ("getHours", "getMinutes", "getSeconds", "getMilliseconds"):
    FUNCTIONS[(_getter, 1)] = ((_TIMES,), INT)
    FUNCTIONS[(_getter, 2)] = ((_TIMES, _TEXT), INT)

CONVERSIONS = frozenset(
    {"int", "uint", "double", "string", "bool", "bytes", "timestamp", "duration"}
)
TEXT_METHODS = frozenset({"contains", "startsWith", "endsWith", "matches"})
SIZED = _SIZED
CONTAINERS = frozenset({LIST, MAP})
