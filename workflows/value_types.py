"""What a definition says about the types of a run's values before the run starts.

The save-time type checks (workflows/type_checks.py, workflows/cel_types.py) read the types
of variables from the ``inputs`` JSON Schema, from what each step kind binds, and from
literals, and flag only operations that fail for *every* value those types allow. So a type
is the set of kinds a value may have at run time, as the CEL runtime sees them (a value that
may be an int or a double is ``{int, double}``: a JSON number), plus what is known of a
list's elements and a map's keys and values. The top, :data:`DYN`, is every kind with nothing
known: an operation on it never fails at save. The bottom, :data:`NEVER`, is no kind: a value
that cannot exist (the elements of ``[]``); nothing on it is reported either.

Types join where a variable may come from several places (two branches, a loop):
``int`` and ``double`` give ``{int, double}``, an int and a string ``{int, string}``, and an
operation fails at save only if it fails for each of them. Structure is kept to
:data:`MAX_DEPTH` levels and :data:`MAX_FIELDS` fields (past that: unknown), so joins in loops
always settle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

INT = "int"
UINT = "uint"
DOUBLE = "double"
STRING = "string"
BOOL = "bool"
NULL = "null"
BYTES = "bytes"
LIST = "list"
MAP = "map"
TIMESTAMP = "timestamp"
DURATION = "duration"
TYPE = "type"
KINDS = frozenset(
    {INT, UINT, DOUBLE, STRING, BOOL, NULL, BYTES, LIST, MAP, TIMESTAMP, DURATION, TYPE}
)
NUMBERS = frozenset({INT, UINT, DOUBLE})
_ORDER = (INT, UINT, DOUBLE, STRING, BOOL, NULL, BYTES, LIST, MAP, TIMESTAMP, DURATION, TYPE)

ANY_NAME = "*"
"""In a set of bound names: any other name may be bound too (a step whose shape is invalid)."""

MAX_DEPTH = 6
"""Levels of lists and maps a type describes; deeper values are unknown."""
MAX_FIELDS = 200
"""Known keys of one map; a map with more is described by its values' join."""


@dataclass(frozen=True)
class Type:
    """The kinds a value may have, and what is known inside a list or a map.

    ``item``: a list's elements; ``fields``: a map's known keys (sorted) and their values;
    ``rest``: the values under any other key (:data:`NEVER`: there are no other keys, the map
    is closed); ``key``: the type of a map's keys. ``None`` means unknown (:data:`DYN`).
    """

    kinds: frozenset[str]
    item: Type | None = None
    fields: tuple[tuple[str, Type], ...] = ()
    rest: Type | None = None
    key: Type | None = None

    @property
    def dynamic(self) -> bool:
        return self.kinds == KINDS and self.item is None and not self.fields and self.rest is None

    @property
    def never(self) -> bool:
        return not self.kinds

    @property
    def closed(self) -> bool:
        """A map with no keys but ``fields`` (an http result, ``execution``...)."""
        return self.rest is not None and self.rest.never

    def has(self, *kinds: str) -> bool:
        return any(kind in self.kinds for kind in kinds)

    def only(self, *kinds: str) -> bool:
        """Every kind it may have is among ``kinds`` (and it may have one)."""
        return bool(self.kinds) and self.kinds <= frozenset(kinds)

    def element(self) -> Type:
        return self.item if self.item is not None else DYN

    def field(self, name: str) -> Type | None:
        """The type under key ``name`` of the map part; None when a closed map lacks it."""
        for known, value in self.fields:
            if known == name:
                return value
        if self.closed:
            return None
        return self.rest if self.rest is not None else DYN

    def values(self) -> Type:
        """The join of every value of the map part."""
        return join_all([value for _, value in self.fields] + [self.rest or DYN])

    def keys(self) -> Type:
        return self.key if self.key is not None else DYN

    def field_names(self) -> list[str]:
        return [name for name, _ in self.fields]


DYN = Type(KINDS)
NEVER = Type(frozenset())


def scalar(*kinds: str) -> Type:
    return Type(frozenset(kinds))


NUMBER = scalar(INT, DOUBLE)  # a JSON number: 3 is an int in a run, 3.5 and 3.0 are doubles
STRING_T = scalar(STRING)
BOOL_T = scalar(BOOL)
INT_T = scalar(INT)


def list_of(item: Type | None) -> Type:
    return _capped(Type(frozenset({LIST}), item=item), 0)


def object_of(fields: Mapping[str, Type], closed: bool = True, rest: Type | None = None) -> Type:
    """A JSON object (text keys): ``closed`` when no key but ``fields`` may be there."""
    shown = tuple(sorted(fields.items()))
    made = Type(frozenset({MAP}), fields=shown, rest=NEVER if closed else rest, key=STRING_T)
    return _capped(made, 0)


def map_of(key: Type | None, value: Type | None) -> Type:
    return Type(frozenset({MAP}), rest=value, key=key)


def bound_object(names: Mapping[str, Type]) -> Type:
    """The object of the names a scope bound (a foreach element, a parallel branch): closed,
    unless :data:`ANY_NAME` says any other name may be there too."""
    known = {name: value for name, value in names.items() if name != ANY_NAME}
    return object_of(known, closed=ANY_NAME not in names)


def nullable(value: Type) -> Type:
    return join(value, scalar(NULL))


def join(a: Type, b: Type) -> Type:
    """The type of a value that has type ``a`` or type ``b``."""
    if a == b or b.never:
        return a
    if a.never:
        return b
    if a.dynamic or b.dynamic:
        return DYN
    return _capped(_join(a, b), 0)


def join_all(types: Iterable[Type]) -> Type:
    joined = NEVER
    for one in types:
        joined = join(joined, one)
    return joined


def _join(a: Type, b: Type) -> Type:
    item = _join_part(a.item, b.item, LIST in a.kinds, LIST in b.kinds)
    key = _join_part(a.key, b.key, MAP in a.kinds, MAP in b.kinds)
    if MAP in a.kinds and MAP in b.kinds:
        fields, rest = _join_maps(a, b)
    elif MAP in a.kinds:
        fields, rest = a.fields, a.rest
    else:
        fields, rest = b.fields, b.rest
    return Type(a.kinds | b.kinds, item=item, fields=fields, rest=rest, key=key)


def _join_part(a: Type | None, b: Type | None, in_a: bool, in_b: bool) -> Type | None:
    if in_a and in_b:
        return None if a is None or b is None else join(a, b)
    return a if in_a else b if in_b else None


def _join_maps(a: Type, b: Type) -> tuple[tuple[tuple[str, Type], ...], Type | None]:
    """Known keys of either map: where only one knows a key, the other's value there (if
    any) is one of its other keys' values."""
    names = sorted(set(a.field_names()) | set(b.field_names()))
    fields = []
    for name in names:
        mine, theirs = a.field(name), b.field(name)
        fields.append((name, join(mine or NEVER, theirs or NEVER)))
    rest = None if a.rest is None or b.rest is None else join(a.rest, b.rest)
    return tuple(fields), rest


def _capped(value: Type, depth: int) -> Type:
    """The type with structure past MAX_DEPTH levels (or MAX_FIELDS keys) forgotten."""
    if value.item is None and not value.fields and value.rest is None and value.key is None:
        return value
    if depth >= MAX_DEPTH:
        return Type(value.kinds)
    item = None if value.item is None else _capped(value.item, depth + 1)
    fields = value.fields
    rest = value.rest
    if len(fields) > MAX_FIELDS:
        rest = value.values()
        fields = ()
    fields = tuple((name, _capped(field, depth + 1)) for name, field in fields)
    rest = None if rest is None else _capped(rest, depth + 1)
    key = None if value.key is None else _capped(value.key, depth + 1)
    return Type(value.kinds, item=item, fields=fields, rest=rest, key=key)


# -- types of JSON values and of JSON Schemas --------------------------------------------------


def of_literal(value: Any, exact: bool = True, depth: int = 0) -> Type:
    """The type of a JSON value. ``exact``: a definition's own literal, whose numbers keep
    their kind (``3`` is an int, ``0.5`` a double; ``3.0`` may be written ``3`` by a tool, so
    it is a number); otherwise (a schema's ``enum``, which compares ``1`` equal to ``1.0``)
    every number is a number."""
    if depth > MAX_DEPTH:
        return DYN
    if value is None:
        return scalar(NULL)
    if isinstance(value, bool):
        return BOOL_T
    if isinstance(value, int):
        return INT_T if exact else NUMBER
    if isinstance(value, float):
        exact_double = exact and math.isfinite(value) and not value.is_integer()
        return scalar(DOUBLE) if exact_double else NUMBER
    if isinstance(value, str):
        return STRING_T
    if isinstance(value, list):
        return list_of(join_all(of_literal(item, exact, depth + 1) for item in value))
    if isinstance(value, dict):
        return object_of({str(k): of_literal(v, exact, depth + 1) for k, v in value.items()})
    return DYN


_SCHEMA_TYPES = {
    "integer": (INT, DOUBLE),  # JSON Schema's integer admits 3.0, a double in a run
    "number": (INT, DOUBLE),
    "string": (STRING,),
    "boolean": (BOOL,),
    "null": (NULL,),
    "array": (LIST,),
    "object": (MAP,),
}


def of_schema(schema: Any, depth: int = 0) -> Type:
    """The type of every value a JSON Schema admits, from the keywords read here (``type``,
    ``enum``, ``const``, ``properties``, ``additionalProperties``, ``items``; ``anyOf`` and
    ``oneOf`` where nothing else says the kind). Every keyword only narrows what a schema
    admits, so the ones not read (``allOf``, ``$ref``, ``if``...) never make this too narrow."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return DYN
    kinds = _schema_kinds(schema, depth)
    if kinds is None:
        return DYN
    if not isinstance(kinds, frozenset):
        return kinds  # an enum or a const: the values themselves
    item: Type | None = None
    if LIST in kinds and "prefixItems" not in schema and isinstance(schema.get("items"), dict):
        item = of_schema(schema["items"], depth + 1)
    if MAP not in kinds:
        return Type(kinds, item=item)
    made = Type(kinds, item=item, key=STRING_T)
    return _with_properties(made, schema, depth)


def _schema_kinds(schema: dict[str, Any], depth: int) -> frozenset[str] | Type | None:
    if "const" in schema:
        return of_literal(schema["const"], exact=False)
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return join_all(of_literal(value, exact=False) for value in schema["enum"])
    declared = schema.get("type")
    names = [declared] if isinstance(declared, str) else declared
    if isinstance(names, list) and names:
        kinds: set[str] = set()
        for name in names:
            if name not in _SCHEMA_TYPES:
                return None
            kinds.update(_SCHEMA_TYPES[name])
        return frozenset(kinds)
    for either in ("anyOf", "oneOf"):
        members = schema.get(either)
        if isinstance(members, list) and members:
            joined = join_all(of_schema(member, depth + 1) for member in members)
            return joined if not joined.dynamic else None
    return KINDS


def _with_properties(made: Type, schema: dict[str, Any], depth: int) -> Type:
    properties = schema.get("properties")
    fields: dict[str, Type] = {}
    if isinstance(properties, dict):
        fields = {str(k): of_schema(v, depth + 1) for k, v in properties.items()}
    extra = schema.get("additionalProperties")
    rest: Type | None = None
    if "patternProperties" not in schema:
        if extra is False:
            rest = NEVER
        elif isinstance(extra, dict):
            rest = of_schema(extra, depth + 1)
    shown = tuple(sorted(fields.items()))
    return _capped(Type(made.kinds, made.item, shown, rest, made.key), depth)


def as_json(value: Type, depth: int = 0) -> Type:
    """What a CEL result becomes when a run holds it (workflows/cel_values.py): a uint an
    int, a timestamp, a duration or a type their text, map keys text."""
    if value.dynamic or value.never or depth > MAX_DEPTH:
        return value
    kinds = set(value.kinds)
    if kinds & {TIMESTAMP, DURATION, TYPE}:
        kinds -= {TIMESTAMP, DURATION, TYPE}
        kinds.add(STRING)
    if UINT in kinds:
        kinds.discard(UINT)
        kinds.add(INT)
    item = None if value.item is None else as_json(value.item, depth + 1)
    fields = tuple((name, as_json(field, depth + 1)) for name, field in value.fields)
    rest = None if value.rest is None else as_json(value.rest, depth + 1)
    key = STRING_T if MAP in kinds else None
    return Type(frozenset(kinds), item=item, fields=fields, rest=rest, key=key)


def at_path(value: Type, segments: Iterable[str], root: str) -> tuple[Type, tuple[str, str] | None]:
    """The type a template reference's path reaches (``{r.json.items.0}``: ``value`` is the
    type of ``root``) and, when no value of that type can have the path, why (templates look
    up map keys and list indexes only: workflows/templating.py ``resolve``), with the
    problem's code."""
    current = value
    walked: list[str] = [root]
    for segment in segments:
        if current.dynamic:
            return DYN, None
        reached: list[Type] = []
        if MAP in current.kinds:
            found = current.field(segment)
            if found is not None:
                reached.append(found)
        if LIST in current.kinds and segment.isdigit():
            reached.append(current.element())
        if not reached and not current.never:
            return NEVER, _no_segment(current, walked, segment)
        current = join_all(reached)
        walked.append(segment)
    return current, None


def _no_segment(value: Type, walked: list[str], segment: str) -> tuple[str, str]:
    where = ".".join(walked)
    if MAP in value.kinds:
        return f"'{where}' has no key '{segment}': it is {a(value)}", "unknown_field"
    if LIST in value.kinds:
        return f"'{where}' is {a(value)}; '{segment}' is not an index", "type_error"
    return f"'{where}' is {a(value)}; it has no '{segment}'", "type_error"


# -- in words ------------------------------------------------------------------------------


def describe(value: Type) -> str:
    """``int``, ``number``, ``string or null``, ``list of string``, ``object {status, ...}``."""
    if value.dynamic:
        return "any value"
    if value.never:
        return "nothing"
    kinds = set(value.kinds)
    words: list[str] = []
    if {INT, DOUBLE} <= kinds:
        kinds -= {INT, DOUBLE}
        words.append("number")
    for kind in _ORDER:
        if kind not in kinds:
            continue
        if kind == LIST:
            words.append(_describe_list(value))
        elif kind == MAP:
            words.append(_describe_map(value))
        else:
            words.append(kind)
    if len(words) > 4:
        return ", ".join(words[:3]) + " or another kind"
    return " or ".join(words)


def a(value: Type) -> str:
    """``a number``, ``an int``, ``an object {...}``."""
    text = describe(value)
    if text in ("any value", "nothing"):
        return text
    article = "an" if text[:1] in "aeiou" else "a"
    return f"{article} {text}"


def _describe_list(value: Type) -> str:
    if value.item is None or value.item.dynamic or value.item.never:
        return "list"
    inner = describe(value.item)
    return f"list of {inner}" if " " not in inner else f"list of ({inner})"


def _describe_map(value: Type) -> str:
    names = value.field_names()
    if not names:
        if value.rest is not None and not value.rest.dynamic and not value.closed:
            return f"map of {describe(value.rest)}"
        return "object {}" if value.closed else "map"
    shown = ", ".join(names[:6])
    more = "" if len(names) <= 6 and value.closed else ", ..."
    return f"object {{{shown}{more}}}"


class Typer(Protocol):
    """What a step kind asks of the type checks to say what it binds (``result_types``) and
    what its scopes add (``scope_types``): the types at the step (workflows/type_checks.py)."""

    def value(self, template: Any) -> Type:
        """The type a templated field renders to (a whole reference keeps its value's type)."""

    def expression(self, expression: str) -> Type:
        """The type of a CEL expression's result, as the run holds it."""

    def scope_binds(self, step: Any, index: int) -> dict[str, Type]:
        """The names the step's ``index``-th scope binds (what its steps set), with types."""
