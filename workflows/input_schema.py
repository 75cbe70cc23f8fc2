"""JSON Schemas that users write: a definition's ``inputs``, an ai step's response schema, an
agent tool's ``parameters``, a ``wait_for_signal`` step's ``payload_schema``.

The one place such schemas are checked and applied, so the API (``input_vars``, trigger
inputs, signal payloads), save-time validation (workflows/validation.py) and the worker (ai
answers, tool arguments) hold the same rules (docs/inputs.md). Pure functions, no I/O:

- :func:`schema_problems` (at save): a valid JSON Schema 2020-12; ``$ref`` / ``$dynamicRef``
  resolving inside the same document (by JSON pointer, ``$anchor`` / ``$dynamicAnchor``, or an
  ``$id`` the document declares) to a schema of it; ``$schema`` only at the root and only
  2020-12; every ``pattern`` and ``patternProperties`` key compiles with RE2 and is at most
  :data:`MAX_PATTERN_LENGTH` characters; every ``default`` satisfies its own subschema.
- :func:`value_problems` (at run time): check a value, with the same rules applied again to
  the schema first (documents saved before these rules existed are refused, not trusted), a
  ``referencing.Registry`` whose retriever refuses every URI, RE2 for every regex, the
  formats of workflows/formats.py asserted, a linear ``uniqueItems`` and a time budget
  (:data:`TIME_LIMIT_SECONDS`) checked at every keyword.
- :func:`value_problems_async`: the same in a thread, for event-loop callers.
- :func:`declarations` / :func:`undeclared_problems`: the names an ``inputs`` schema declares
  for the top-level object, and the given names it does not (the undeclared-input rule).
- :func:`with_defaults`: top-level ``default``s filled in for missing inputs.

Why RE2 (the ``google-re2`` package, Google's own binding, a manylinux wheel) and not the
``regex`` package with a timeout (both install here): RE2 matches in time linear in the text
for every pattern it accepts (no backtracking at all), so no pattern an author writes can hold
a process, whatever the input; a timeout only bounds the damage per match and still burns it
on every request, and every keyword would need one. What RE2 refuses
(lookaround, backreferences) is refused at save with the path, so a saved definition never
fails later for it. RE2 is also closer to JSON Schema's ECMA-262 regexes than Python's ``re``:
``\\d`` and ``\\w`` are ASCII and ``$`` matches only at the end of the text.

Why in-document references only and not a guarded retriever: jsonschema's default retriever
opened any URL (``http``, ``file``) with no timeout, no SSRF guard and redirects followed, on
every run; a schema has no need for the network, so nothing is retrieved, ever. A reference
by ``$id`` or anchor to a schema the document itself holds needs no retrieval, so it resolves.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import re2
import referencing.exceptions
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError
from referencing import Registry
from referencing._core import Resolver
from referencing.jsonschema import DRAFT202012

from workflows.errors import EngineError, Problem, json_path
from workflows.formats import ASSERTED_FORMATS, conforms

MAX_PATTERN_LENGTH = 1000
"""Characters in one ``pattern`` / ``patternProperties`` key (RE2 then bounds memory too)."""

TIME_LIMIT_SECONDS = 2.0
"""Wall time one validation may take; past it the value is refused as too costly to check."""

MAX_REPORTED = 50
"""Violations reported per value (the first ones by path); checking stops there."""

MAX_MESSAGE = 300
"""Characters of one violation message (jsonschema quotes the whole offending value)."""

DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Problem codes. Violations are the value's fault; the others are the schema's.
VIOLATION = "invalid_value"
INVALID_SCHEMA = "invalid_schema"
TOO_COSTLY = "schema_too_costly"

# Schema positions of JSON Schema 2020-12 (plus draft-07's ``definitions``, which the
# validator does not apply but a ``$ref`` may point into).
_ONE_SCHEMA = (
    "additionalProperties",
    "contains",
    "contentSchema",
    "else",
    "if",
    "items",
    "not",
    "propertyNames",
    "then",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_SCHEMA_MAPS = ("$defs", "definitions", "dependentSchemas", "patternProperties", "properties")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_REFERENCES = ("$ref", "$dynamicRef")

Location = tuple[str | int, ...]


# -- regexes ------------------------------------------------------------------------------------


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern on stderr
    # Program + DFA cache per pattern (past it RE2 falls back to its NFA: slower, still
    # linear). With the cache below, patterns hold at most 256 MiB however many schemas.
    options.max_mem = 1 << 20
    return options


_OPTIONS = _re2_options()


class PatternError(EngineError, ValueError):
    """A pattern RE2 cannot run (or that is too long)."""


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """The RE2 program for a JSON Schema pattern; PatternError when it cannot be one."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternError(
            f"the pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_LENGTH}"
        )
    try:
        return re2.compile(_re2_syntax(pattern), _OPTIONS)
    except re2.error as err:
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        raise PatternError(
            f"the pattern is not one the engine can run ({reason}); patterns run on RE2, "
            "which has no lookaround and no backreferences"
        ) from None
    except (TypeError, UnicodeError) as err:
        raise PatternError(f"the pattern cannot be compiled: {err}") from None


# ECMA-262 (JSON Schema's regex dialect) names Unicode properties as RE2 does not: long
# General_Category names (\p{Letter}) and "gc=" / "General_Category=" / "sc=" / "Script="
# forms. They are rewritten to RE2's names (\p{L}, \p{Greek}); a name RE2 lacks is left as
# written, and refused with the rest.
_CATEGORIES = {
    "Letter": "L",
    "Uppercase_Letter": "Lu",
    "Lowercase_Letter": "Ll",
    "Titlecase_Letter": "Lt",
    "Modifier_Letter": "Lm",
    "Other_Letter": "Lo",
    "Mark": "M",
    "Combining_Mark": "M",
    "Nonspacing_Mark": "Mn",
    "Spacing_Mark": "Mc",
    "Enclosing_Mark": "Me",
    "Number": "N",
    "Decimal_Number": "Nd",
    "digit": "Nd",
    "Letter_Number": "Nl",
    "Other_Number": "No",
    "Punctuation": "P",
    "punct": "P",
    "Connector_Punctuation": "Pc",
    "Dash_Punctuation": "Pd",
    "Open_Punctuation": "Ps",
    "Close_Punctuation": "Pe",
    "Initial_Punctuation": "Pi",
    "Final_Punctuation": "Pf",
    "Other_Punctuation": "Po",
    "Symbol": "S",
    "Math_Symbol": "Sm",
    "Currency_Symbol": "Sc",
    "Modifier_Symbol": "Sk",
    "Other_Symbol": "So",
    "Separator": "Z",
    "Space_Separator": "Zs",
    "Line_Separator": "Zl",
    "Paragraph_Separator": "Zp",
    "Other": "C",
    "Control": "Cc",
    "cntrl": "Cc",
    "Format": "Cf",
    "Surrogate": "Cs",
    "Private_Use": "Co",
}


def _property_name(name: str) -> str:
    key, _, value = name.partition("=")
    if not value:
        return _CATEGORIES.get(name, name)
    if key in ("gc", "General_Category"):
        return _CATEGORIES.get(value, value)
    return value if key in ("sc", "Script") else name


def _re2_syntax(pattern: str) -> str:
    """``pattern`` with ECMA-262's Unicode property names in RE2's spelling."""
    if "\\p{" not in pattern and "\\P{" not in pattern:
        return pattern
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] != "\\" or i + 1 == len(pattern):
            out.append(pattern[i])
            i += 1
            continue
        end = pattern.find("}", i + 3) if pattern.startswith("{", i + 2) else -1
        if pattern[i + 1] in "pP" and end > 0:
            out.append(f"\\{pattern[i + 1]}{{{_property_name(pattern[i + 3 : end])}}}")
            i = end + 1
        else:  # any other escape is copied whole: in \\p{Letter}, "p{Letter}" is plain text
            out.append(pattern[i : i + 2])
            i += 2
    return "".join(out)


def _search(pattern: str, text: str) -> bool:
    program = compile_pattern(pattern)
    try:
        return program.search(text) is not None
    except UnicodeError:
        # A lone surrogate (legal in JSON text, not in UTF-8): match it as U+FFFD.
        cleaned = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return program.search(cleaned) is not None


# -- save time ----------------------------------------------------------------------------------


def _format_checker() -> FormatChecker:
    """Draft 2020-12's format checks, with ``regex`` checked by the engine that runs them."""
    checker = FormatChecker(list(Draft202012Validator.FORMAT_CHECKER.checkers))

    @checker.checks("regex", raises=PatternError)
    def _is_regex(instance: object) -> bool:
        if isinstance(instance, str):
            compile_pattern(instance)
        return True

    return checker


_META_FORMATS = _format_checker()


def schema_problems(schema: Any, where: str) -> list[Problem]:
    """Everything wrong with a user's schema, each with its JSON path under ``where``."""
    problems: list[Problem] = []
    try:
        Draft202012Validator.check_schema(schema, format_checker=_META_FORMATS)
    except SchemaError as err:
        message = err.message
        if isinstance(err.cause, PatternError):
            message = f"invalid pattern {err.instance!r}: {err.cause}"
        problems.append(Problem(json_path(err.path, where), f"not a valid JSON Schema: {message}"))
    except RecursionError:
        return [Problem(where, "not a valid JSON Schema: nested too deeply")]
    # The engine's own rules too, so a remote $ref is named even beside another mistake.
    try:
        breaks = _rule_breaks(schema)
    except Exception:
        # Only a schema the metaschema refused can trip the walk (a non-string $id, ...).
        if not problems:
            raise
        breaks = []
    seen = {problem.path for problem in problems}
    for location, message in breaks:
        path = json_path(location, where)
        if path not in seen:
            seen.add(path)
            problems.append(Problem(path, message))
    if problems:
        return problems
    # Defaults are checked by the validator the runs will use (compiled once, cached).
    try:
        validator = _compiled(_key(schema))
    except Exception as err:  # past every check above: a case they miss, never a 500
        return [Problem(where, f"the schema cannot be used ({type(err).__name__}: {err})")]
    return _default_problems(validator, where)


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    """The registry's retriever: nothing outside the schema itself is ever fetched."""
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _refusing_registry() -> Registry[Any]:
    """A registry without resources of its own whose retriever refuses every URI (jsonschema
    without one opens any URL, ``file://`` included, with urllib)."""
    return Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


def _schema_nodes(schema: Any) -> Iterator[tuple[Any, Location]]:
    """Every (sub)schema in schema positions with its location, in document order (a node
    before the nodes inside it); iterative, so depth costs no recursion."""
    stack: list[tuple[Any, Location]] = [(schema, ())]
    while stack:
        node, location = stack.pop()
        yield node, location
        if not isinstance(node, dict):
            continue
        children: list[tuple[Any, Location]] = []
        for keyword, member in node.items():
            if keyword in _ONE_SCHEMA and isinstance(member, dict | bool):
                children.append((member, (*location, keyword)))
            elif keyword in _SCHEMA_MAPS and isinstance(member, dict):
                children += [(sub, (*location, keyword, name)) for name, sub in member.items()]
            elif keyword in _SCHEMA_LISTS and isinstance(member, list):
                children += [(sub, (*location, keyword, i)) for i, sub in enumerate(member)]
        stack.extend(reversed(children))


@dataclass(frozen=True)
class _Node:
    """A schema object of the document, its location, and the resolver its references use
    (its own ``$id``, or the nearest enclosing one, is their base URI)."""

    schema: dict[str, Any]
    location: Location
    resolver: Resolver[Any]


def _walk(schema: Any) -> list[_Node]:
    """The document's schema objects (parents first), each with its resolver. References
    resolve within the document only: by JSON pointer, ``$anchor`` / ``$dynamicAnchor``, or
    an ``$id`` declared in it (absolute or relative to the enclosing base URI)."""
    root: Resolver[Any] = _refusing_registry().resolver_with_root(
        DRAFT202012.create_resource(schema)
    )
    resolvers: dict[Location, Resolver[Any]] = {(): root}
    nodes: list[_Node] = []
    for node, location in _schema_nodes(schema):
        if not isinstance(node, dict):
            continue
        resolver = _resolver_at(resolvers, location, root)
        if location and isinstance(node.get("$id"), str):
            resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
        resolvers[location] = resolver
        nodes.append(_Node(node, location, resolver))
    return nodes


# Keywords that apply their subschemas to the same value (no descent into it).
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")

Edges = dict[int, list[tuple[int, Location]]]
Break = tuple[Location, str]


def _rule_breaks(schema: Any) -> list[Break]:
    """The engine's own rules beyond the metaschema: in-document references, dialect,
    patterns.

    Refs are resolved against a registry that refuses every retrieval, and must land on a
    node of the walk: a reference into data (``default``, ``examples``, an unknown keyword)
    would be applied as a schema nothing else here has checked. A chain of references that
    comes back to where it started without descending into the value recurses forever.
    """
    nodes = _walk(schema)
    positions = {id(node.schema) for node in nodes}
    found: list[Break] = []
    in_place: Edges = {}
    for node in nodes:
        found += _dialect_breaks(node)
        found += _pattern_breaks(node)
        breaks, edges = _reference_breaks(node, positions)
        found += breaks
        in_place.setdefault(id(node.schema), []).extend(edges + _in_place_edges(node))
    found += [
        (where, "this reference leads back to itself without descending into the value "
                "(it would recurse forever); refer to it from properties or items instead")
        for where in _cycles(in_place)
    ]  # fmt: skip
    return found


def _dialect_breaks(node: _Node) -> list[Break]:
    """``$schema`` only at the root, and only 2020-12."""
    if "$schema" not in node.schema:
        return []
    dialect = node.schema["$schema"]
    if not node.location and isinstance(dialect, str) and dialect.rstrip("#") == DIALECT:
        return []
    return [
        (
            (*node.location, "$schema"),
            f"only JSON Schema 2020-12 is supported, and '$schema' only at the top "
            f"(as {DIALECT!r})",
        )
    ]


def _pattern_breaks(node: _Node) -> list[Break]:
    """Every ``pattern`` and ``patternProperties`` key is one RE2 runs."""
    found: list[Break] = []
    pattern = node.schema.get("pattern")
    if isinstance(pattern, str):
        try:
            compile_pattern(pattern)
        except PatternError as err:
            found.append(((*node.location, "pattern"), f"invalid pattern {pattern!r}: {err}"))
    members = node.schema.get("patternProperties")
    if isinstance(members, dict):
        for key in members:
            try:
                compile_pattern(key)
            except PatternError as err:
                found.append(
                    ((*node.location, "patternProperties", key), f"invalid pattern {key!r}: {err}")
                )
    return found


def _reference_breaks(
    node: _Node, positions: set[int]
) -> tuple[list[Break], list[tuple[int, Location]]]:
    """(refused references, in-place edges to the schemas the others point to)."""
    found: list[Break] = []
    edges: list[tuple[int, Location]] = []
    for keyword in _REFERENCES:
        ref = node.schema.get(keyword)
        if isinstance(ref, str):
            problem, target = _reference_problem(ref, node.resolver, positions)
            if problem:
                found.append(((*node.location, keyword), problem))
            elif isinstance(target, dict):
                edges.append((id(target), (*node.location, keyword)))
    return found, edges


def _in_place_edges(node: _Node) -> list[tuple[int, Location]]:
    """Subschemas applied to the node's own value (allOf, not, if, dependentSchemas...)."""
    schema, location = node.schema, node.location
    edges: list[tuple[int, Location]] = [
        (id(schema[keyword]), (*location, keyword))
        for keyword in _IN_PLACE_ONE
        if isinstance(schema.get(keyword), dict)
    ]
    for keyword in _IN_PLACE_LISTS:
        members = schema.get(keyword)
        if isinstance(members, list):
            edges += [
                (id(sub), (*location, keyword, i))
                for i, sub in enumerate(members)
                if isinstance(sub, dict)
            ]
    members = schema.get("dependentSchemas")
    if isinstance(members, dict):
        edges += [
            (id(sub), (*location, "dependentSchemas", name))
            for name, sub in members.items()
            if isinstance(sub, dict)
        ]
    return edges


def _cycles(edges: Edges) -> list[Location]:
    """Where in-place chains (``$ref``, allOf, ...) close a loop: at the loop's last ``$ref``.

    Iterative depth-first search from every node (in document order); each node is entered
    once, so the walk is linear in the schema.
    """
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    found: list[Location] = []
    for root in edges:
        if root not in state:
            state[root] = 1
            found += _cycles_from(root, edges, state)
    return found


def _cycles_from(root: int, edges: Edges, state: dict[int, int]) -> list[Location]:
    path: list[Location] = []  # the edge taken into each node of the current path
    stack: list[tuple[int, int]] = [(root, 0)]
    found: list[Location] = []
    while stack:
        node, index = stack[-1]
        out = edges.get(node, [])
        if index >= len(out):
            stack.pop()
            state[node] = 2
            if path:
                path.pop()
            continue
        stack[-1] = (node, index + 1)
        target, where = out[index]
        if state.get(target) == 1:
            start = next(i for i, (n, _) in enumerate(stack) if n == target)
            loop = [*path[start:], where]
            refs = [edge for edge in loop if edge[-1:] in (("$ref",), ("$dynamicRef",))]
            found.append(refs[-1] if refs else where)
        elif target not in state:
            state[target] = 1
            stack.append((target, 0))
            path.append(where)
    return found


def _resolver_at(
    resolvers: Mapping[Location, Resolver[Any]], location: Location, root: Resolver[Any]
) -> Resolver[Any]:
    """The resolver of the nearest enclosing node (its ``$id`` sets the base URI)."""
    for cut in range(len(location) - 1, -1, -1):
        found = resolvers.get(location[:cut])
        if found is not None:
            return found
    return root


_NOT_IN_DOCUMENT = (
    "only local references (to this schema: '#/$defs/...', an '$anchor', or an '$id' it "
    "declares) are allowed; nothing is fetched from the network or the disk"
)


def _reference_problem(
    ref: str, resolver: Resolver[Any], positions: set[int]
) -> tuple[str | None, Any]:
    """(why the reference is refused or None, the schema it points to)."""
    try:
        target = resolver.lookup(ref).contents
    except (
        referencing.exceptions.PointerToNowhere,
        referencing.exceptions.NoSuchAnchor,
        referencing.exceptions.InvalidAnchor,
    ):
        return f"{ref!r} points to nothing in this schema", None
    except referencing.exceptions.Unresolvable:
        # Not this document nor one it embeds: the retriever refused to look further.
        return f"{ref!r} is not allowed: it names another document, and {_NOT_IN_DOCUMENT}", None
    except Exception as err:  # a URI urllib cannot join (an unclosed '[', ...)
        return f"{ref!r} is not a reference the engine can resolve ({err})", None
    if not isinstance(target, bool) and not (isinstance(target, dict) and id(target) in positions):
        return (
            f"{ref!r} points outside the schema's keywords; put shared schemas under '$defs'"
        ), None
    return None, target


def _default_problems(validator: Any, where: str) -> list[Problem]:
    """Every ``default`` satisfies the subschema it sits in (one that does not would fail
    every run that leaves the input out). Checked as values are: formats, RE2, the budget."""
    problems: list[Problem] = []
    deadline = time.monotonic() + TIME_LIMIT_SECONDS
    for node in _walk(validator.schema):
        if "default" not in node.schema:
            continue
        at = json_path((*node.location, "default"), where)
        applied = validator.evolve(schema=node.schema, _resolver=node.resolver)
        left = max(deadline - time.monotonic(), 0.0)
        for problem in _violations(applied, node.schema["default"], at, left):
            message = problem.message
            if problem.code == VIOLATION:
                message = f"the default does not satisfy its own schema: {message}"
            problems.append(Problem(problem.path, message))
        if len(problems) >= MAX_REPORTED:
            break
    return problems


# -- run time -----------------------------------------------------------------------------------


class _TooCostly(EngineError):
    pass


_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "schema_deadline", default=None
)
# Keyword evaluations left, when the budget is counted instead of timed (workflow code).
_CHECKS_LEFT: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "schema_checks_left", default=None
)

Keyword = Callable[[Any, Any, Any, dict[str, Any]], Iterator[ValidationError] | None]


def _bounded(keyword: Keyword) -> Keyword:
    """A keyword that first checks the time budget: every descent passes one of these."""

    def checked(validator: Any, value: Any, instance: Any, schema: dict[str, Any]) -> Any:
        left = _CHECKS_LEFT.get()
        if left is not None:
            left[0] -= 1
            if left[0] < 0:
                raise _TooCostly()
        else:
            deadline = _DEADLINE.get()
            if deadline is not None and time.monotonic() > deadline:
                raise _TooCostly()
        return keyword(validator, value, instance, schema)

    return checked


# The keywords below are jsonschema 4.x's own (jsonschema/_keywords.py, _utils.py), with
# RE2 in place of ``re`` and a hashing ``uniqueItems``; the rest are used as they are.


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Any:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    for key in instance:
        if key not in properties and not any(_search(p, key) for p in patterns):
            yield key


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: dict[str, Any]
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    extras = set(_additional(instance, schema))
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        listed = ", ".join(repr(each) for each in sorted(extras, key=str))
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {patterns}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(
                f"Additional properties are not allowed ({listed} {verb} unexpected)"
            )


def _is_valid(errors: Iterator[ValidationError]) -> bool:
    return next(errors, None) is None


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> list[str]:
    """jsonschema's find_evaluated_property_keys_by_schema, with RE2."""
    if validator.is_type(schema, "boolean"):
        return []
    keys: list[str] = []
    for keyword in _REFERENCES:
        ref = schema.get(keyword)
        if ref is not None:
            resolved = validator._resolver.lookup(ref)
            keys += _evaluated_keys(
                validator.evolve(schema=resolved.contents, _resolver=resolved.resolver),
                instance,
                resolved.contents,
            )
    properties = schema.get("properties")
    if validator.is_type(properties, "object"):
        keys += properties.keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        subschema = schema.get(keyword)
        if subschema is not None:
            keys += (k for k, v in instance.items() if _is_valid(validator.descend(v, subschema)))
    if "patternProperties" in schema:
        for key in instance:
            keys += [key for p in schema["patternProperties"] if _search(p, key)]
    for key, subschema in schema.get("dependentSchemas", {}).items():
        if key in instance:
            keys += _evaluated_keys(validator, instance, subschema)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if _is_valid(validator.descend(instance, subschema)):
                keys += _evaluated_keys(validator, instance, subschema)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys += _evaluated_keys(validator, instance, schema["if"])
            if "then" in schema:
                keys += _evaluated_keys(validator, instance, schema["then"])
        elif "else" in schema:
            keys += _evaluated_keys(validator, instance, schema["else"])
    return keys


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: dict[str, Any]
) -> Any:
    if not validator.is_type(instance, "object"):
        return
    evaluated = set(_evaluated_keys(validator, instance, schema))
    bad = [
        key
        for key in instance
        if key not in evaluated
        and not _is_valid(validator.descend(instance[key], unevaluated, path=key, schema_path=key))
    ]
    if bad:
        listed = ", ".join(repr(each) for each in sorted(bad, key=str))
        verb = "was" if len(bad) == 1 else "were"
        if unevaluated is False:
            yield ValidationError(
                f"Unevaluated properties are not allowed ({listed} {verb} unexpected)"
            )
        else:
            yield ValidationError(
                "Unevaluated properties are not valid under the given schema "
                f"({listed} {verb} unevaluated and invalid)"
            )


def _canonical(value: Any) -> Any:
    """A hashable stand-in with JSON Schema's equality (1 == 1.0, true != 1)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(_canonical(item) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((k, _canonical(v)) for k, v in value.items()))
    return ("other", repr(value))


def _unique_items(validator: Any, unique: Any, instance: Any, schema: dict[str, Any]) -> Any:
    # jsonschema compares every pair of unsortable items: quadratic in the array's length.
    if unique and validator.is_type(instance, "array"):
        seen: set[Any] = set()
        for item in instance:
            key = _canonical(item)
            if key in seen:
                yield ValidationError(f"{instance!r} has non-unique elements")
                return
            seen.add(key)


_OWN_KEYWORDS: dict[str, Keyword] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
    "uniqueItems": _unique_items,
}

_Validator = validators.extend(
    Draft202012Validator,
    validators={
        name: _bounded(_OWN_KEYWORDS.get(name, keyword))
        for name, keyword in Draft202012Validator.VALIDATORS.items()
    },
)


def _value_formats() -> FormatChecker:
    """The formats asserted on values (workflows/formats.py); any other one is accepted as
    an annotation, as JSON Schema has it."""
    checker = FormatChecker(())
    for name in ASSERTED_FORMATS:
        checker.checks(name)(partial(conforms, name))
    return checker


_VALUE_FORMATS = _value_formats()


class UnusableSchema(EngineError):
    """The schema breaks the engine's rules (a document saved before they existed)."""


def _strip_dialects(schema: Any) -> None:
    """Drop ``$schema`` everywhere: jsonschema would switch a subschema that declares one to
    the stock validator for that dialect (Python ``re``, the quadratic uniqueItems)."""
    for node, _ in _schema_nodes(schema):
        if isinstance(node, dict):
            node.pop("$schema", None)


def _key(schema: Any) -> str:
    """The schema's canonical text: what the caches below are keyed by."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@lru_cache(maxsize=256)
def _compiled(text: str) -> Any:
    schema = json.loads(text)  # a private copy: the validator may keep it
    breaks = [b for b in _rule_breaks(schema) if b[0][-1:] != ("$schema",)]
    if breaks:
        location, message = breaks[0]
        raise UnusableSchema(f"{json_path(location, 'the schema at $')}: {message}")
    _strip_dialects(schema)
    return _Validator(schema, registry=_refusing_registry(), format_checker=_VALUE_FORMATS)


def _order(error: ValidationError) -> tuple[tuple[int, int, str], ...]:
    """Sort key for error paths that mix indexes and names."""
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path)


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def value_problems(
    schema: Any,
    value: Any,
    where: str = "$",
    time_limit: float = TIME_LIMIT_SECONDS,
    max_checks: int | None = None,
) -> list[Problem]:
    """Where ``value`` breaks ``schema`` (code VIOLATION), or why it could not be checked
    (INVALID_SCHEMA, TOO_COSTLY); empty when it conforms. Never raises for bad input.

    The check is bounded by ``time_limit`` seconds, or, given ``max_checks``, by that many
    keyword evaluations: the same verdict on every machine, as workflow code needs."""
    try:
        validator = _compiled(_key(schema))
    except UnusableSchema as err:
        return [Problem(where, f"{err}; save the definition again to see every problem",
                        INVALID_SCHEMA)]  # fmt: skip
    except Exception as err:  # a schema saved unchecked can trip the walk: never a 500
        return [Problem(where, f"the schema cannot be used ({type(err).__name__}: {err})",
                        INVALID_SCHEMA)]  # fmt: skip
    return _violations(validator, value, where, time_limit, max_checks)


def _violations(
    validator: Any, value: Any, where: str, time_limit: float, max_checks: int | None = None
) -> list[Problem]:
    """What :func:`value_problems` reports, for a compiled validator (or one evolved to a
    subschema of it)."""
    token = _DEADLINE.set(None if max_checks is not None else time.monotonic() + time_limit)
    counted = _CHECKS_LEFT.set([max_checks] if max_checks is not None else None)
    errors: list[ValidationError] = []
    try:
        for error in validator.iter_errors(value):
            errors.append(error)
            if len(errors) >= MAX_REPORTED:
                break
    except _TooCostly:
        spent = f"{max_checks:,} checks" if max_checks is not None else f"{time_limit:g} s"
        return [
            Problem(
                where,
                f"checking the value against the schema took longer than {spent}; "
                "simplify the schema (fewer nested anyOf/oneOf/$ref) or send a smaller value",
                TOO_COSTLY,
            )
        ]
    except RecursionError:
        return [
            Problem(
                where,
                "the schema and value nest too deeply to check (a $ref that refers to itself "
                "without descending into the value?)",
                TOO_COSTLY,
            )
        ]
    except referencing.exceptions.Unresolvable as err:
        return [Problem(where, f"the schema has an unresolvable reference: {err}", INVALID_SCHEMA)]
    except PatternError as err:
        return [Problem(where, f"the schema has a pattern the engine cannot run: {err}",
                        INVALID_SCHEMA)]  # fmt: skip
    except Exception as err:  # a schema saved unchecked can break jsonschema itself: not a 500
        return [Problem(where, f"the schema cannot be applied ({type(err).__name__}: {err})",
                        INVALID_SCHEMA)]  # fmt: skip
    finally:
        _DEADLINE.reset(token)
        _CHECKS_LEFT.reset(counted)
    errors.sort(key=_order)
    return [
        Problem(json_path(error.absolute_path, where), _short(error.message), VIOLATION)
        for error in errors
    ]


async def value_problems_async(
    schema: Any, value: Any, where: str = "$", time_limit: float = TIME_LIMIT_SECONDS
) -> list[Problem]:
    """:func:`value_problems` in a worker thread, so an event loop keeps serving meanwhile."""
    return await asyncio.to_thread(value_problems, schema, value, where, time_limit)


# -- the top-level object: declared names, defaults ---------------------------------------------


def _applied_at_top(schema: Any, conditional: bool) -> list[dict[str, Any]]:
    """The schema objects that apply to the top-level value itself, the root first: allOf
    members and reference targets (``$ref``, ``$dynamicRef``, by pointer, anchor or ``$id``);
    with ``conditional``, also those that apply only to some values: anyOf / oneOf members,
    if / then / else, dependentSchemas. Never ``not``: what it names is what a value is not."""
    if not isinstance(schema, dict):
        return []
    start: Resolver[Any] = _refusing_registry().resolver_with_root(
        DRAFT202012.create_resource(schema)
    )
    stack: list[tuple[Any, Resolver[Any]]] = [(schema, start)]
    seen: set[int] = set()
    found: list[dict[str, Any]] = []
    while stack:
        node, resolver = stack.pop()
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        found.append(node)
        if node is not schema and isinstance(node.get("$id"), str):
            resolver = resolver.in_subresource(DRAFT202012.create_resource(node))
        children = _reference_targets(node, resolver)
        children += [(member, resolver) for member in _members(node, conditional)]
        stack.extend(reversed(children))
    return found


def _reference_targets(node: dict[str, Any], resolver: Resolver[Any]) -> list[Any]:
    targets = []
    for keyword in _REFERENCES:
        ref = node.get(keyword)
        if isinstance(ref, str):
            try:
                resolved = resolver.lookup(ref)
            except Exception:  # refused at save; value_problems names it for older documents
                resolved = None
            if resolved is not None:
                targets.append((resolved.contents, resolved.resolver))
    return targets


def _members(node: dict[str, Any], conditional: bool) -> list[Any]:
    lists = ("allOf", "anyOf", "oneOf") if conditional else ("allOf",)
    members = [sub for keyword in lists if isinstance(node.get(keyword), list)
               for sub in node[keyword]]  # fmt: skip
    if conditional:
        members += [node[keyword] for keyword in ("if", "then", "else") if keyword in node]
        dependent = node.get("dependentSchemas")
        if isinstance(dependent, dict):
            members += list(dependent.values())
    return members


@dataclass(frozen=True)
class Declarations:
    """What an ``inputs`` schema declares of the top-level object's names (docs/inputs.md).

    ``closed``: the schema names its inputs (``properties`` or ``patternProperties`` in a
    schema that applies to the top level), so a name it does not declare is refused. Open when
    it names none, when one of those schemas takes any name (``additionalProperties`` or
    ``unevaluatedProperties`` other than ``false``), or when the root itself sets either
    keyword (then JSON Schema's own rule decides, and reports)."""

    names: frozenset[str]
    patterns: tuple[str, ...]
    closed: bool

    def declares(self, name: str) -> bool:
        return (
            not self.closed
            or name in self.names
            or any(_search(pattern, name) for pattern in self.patterns)
        )


OPEN = Declarations(frozenset(), (), closed=False)


def declarations(schema: Any) -> Declarations:
    """The names a schema declares: the same for every value, so the names a definition's
    steps may read at save time are the names a run may be given."""
    try:
        return _declarations(_key(schema))
    except Exception:  # a schema saved unchecked: value_problems reports it
        return OPEN


@lru_cache(maxsize=256)
def _declarations(text: str) -> Declarations:
    schema = json.loads(text)
    names: dict[str, None] = {}
    patterns: dict[str, None] = {}
    named = any_name = False
    for node in _applied_at_top(schema, conditional=True):
        for keyword, found in (("properties", names), ("patternProperties", patterns)):
            if isinstance(node.get(keyword), dict):
                named = True
                found.update(dict.fromkeys(node[keyword]))
        for keyword in ("additionalProperties", "unevaluatedProperties"):
            any_name = any_name or node.get(keyword, False) is not False
    root_decides = isinstance(schema, dict) and (
        "additionalProperties" in schema or "unevaluatedProperties" in schema
    )
    closed = named and not any_name and not root_decides
    return Declarations(frozenset(names), tuple(patterns), closed)


def undeclared_problems(schema: Any, value: Any, where: str = "$") -> list[Problem]:
    """The top-level names of ``value`` that ``schema`` does not declare (code VIOLATION)."""
    if not isinstance(value, dict):
        return []
    declared = declarations(schema)
    if not declared.closed:
        return []
    listed = ", ".join(sorted(declared.names)) or "none"
    if declared.patterns:
        listed += "; or a name matching " + ", ".join(repr(p) for p in declared.patterns)
    return [
        Problem(
            json_path((name,), where),
            f"'{name}' is not an input of this workflow (declared: {listed}); "
            "declare it in `inputs.properties`",
            VIOLATION,
        )
        for name in sorted(value)
        if not declared.declares(name)
    ]


def with_defaults(schema: Any, value: Any) -> Any:
    """``value`` with a ``default`` filled in for each missing top-level name: from the
    ``properties`` of the root and of the schemas that always apply to the top level (allOf
    members, ``$ref`` targets), the first found winning. anyOf / oneOf / if branches are
    not used: whether they apply depends on the value."""
    if not isinstance(value, dict) or not isinstance(schema, dict):
        return value
    try:
        defaults = _defaults(_key(schema))
    except Exception:  # a schema saved unchecked: value_problems reports it
        return value
    filled = dict(value)
    for name, default in defaults:
        if name not in filled:
            filled[name] = copy.deepcopy(default)  # the cached copy is never handed out
    return filled


@lru_cache(maxsize=256)
def _defaults(text: str) -> tuple[tuple[str, Any], ...]:
    found: dict[str, Any] = {}
    for node in _applied_at_top(json.loads(text), conditional=False):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, member in properties.items():
                if name not in found and isinstance(member, dict) and "default" in member:
                    found[name] = member["default"]
    return tuple(found.items())
