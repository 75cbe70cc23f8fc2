"""The cel-spec conformance cases (vendored in ``cel-spec/``), as the engine can run them.

The ``.textproto`` files are read with protobuf's own text-format parser against the
descriptors of cel-spec's ``.proto`` files (``cel-spec/descriptors.binpb``, generated once from
the vendored ``proto/`` tree; see ``cel-spec/README.md``), so no hand-written parser can
misread a case.

A case is *in scope* when the engine can represent it: its bindings are JSON values (what a
run's context holds) and its expected result is a JSON value, a timestamp (a run holds it as
RFC 3339 text), a duration (text, as ``string(d)`` writes it), a type (its name), or an error.
Every other case carries the reason it is out of scope (:data:`EXCLUSIONS`).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    message_factory,
    text_format,
)
from google.protobuf.message import Message

ROOT = Path(__file__).parent / "cel-spec"
TESTDATA = ROOT / "testdata"

# Why a case is out of scope; the README and docs/expressions.md give the counts.
MESSAGES = "protobuf messages or enums (the engine's values are JSON)"
UNKNOWNS = "unknown values or type-check only (the engine has neither)"
NO_MACROS = "macros disabled (the engine always has them)"
CONTAINER = "a container namespace (the engine has none)"
BYTES = "a bytes value bound or expected (JSON has no bytes)"
UINT_BINDING = "a uint bound (JSON numbers arrive as int or double)"
NOT_FINITE = "NaN or infinity bound or expected (JSON numbers are finite)"
MAP_KEYS = "a map with non-string keys expected or bound (JSON objects have string keys)"
TEMPORAL_BINDING = "a timestamp or duration bound (a run holds them as text)"
DOTTED_NAME = "a variable with a dotted name (a run's variables are identifiers)"
EXCLUSIONS = (
    MESSAGES,
    UNKNOWNS,
    NO_MACROS,
    CONTAINER,
    BYTES,
    UINT_BINDING,
    NOT_FINITE,
    MAP_KEYS,
    TEMPORAL_BINDING,
    DOTTED_NAME,
)

# Names of protobuf messages and enums in the expressions (TestAllTypes, google.protobuf.*, ...).
_MESSAGE_NAME = re.compile(
    r"\b(?:TestAllTypes|NestedTestAllTypes|NestedMessage|NestedEnum|GlobalEnum|TestRequired"
    r"|google\.protobuf|cel\.expr|\.conformance\.)"
)


class OutOfScope(Exception):
    """A value the engine cannot hold; the message is one of :data:`EXCLUSIONS`."""


@dataclass(frozen=True)
class Expected:
    """What a case expects: a value (converted as the engine converts results) or an error."""

    error: bool = False
    value: Any = None


@dataclass(frozen=True)
class Case:
    file: str
    name: str  # "<section>/<test>"
    expr: str
    bindings: dict[str, Any] = field(default_factory=dict)
    expected: Expected = Expected()
    excluded: str | None = None  # why the case is out of scope, or None


@lru_cache(maxsize=1)
def _test_file_class() -> tuple[type[Message], descriptor_pool.DescriptorPool]:
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(
        (ROOT / "descriptors.binpb").read_bytes()
    )
    pool = descriptor_pool.DescriptorPool()
    for file in descriptors.file:
        pool.Add(file)
    message = pool.FindMessageTypeByName("cel.expr.conformance.test.SimpleTestFile")
    return message_factory.GetMessageClass(message), pool


def files() -> list[str]:
    return sorted(p.stem for p in TESTDATA.glob("*.textproto"))


def load(file: str) -> list[Case]:
    """Every case of one vendored file, in file order."""
    cls, pool = _test_file_class()
    parsed = cls()
    with warnings.catch_warnings():  # protobuf warns of escapes such as "\?" it then reads well
        warnings.simplefilter("ignore", DeprecationWarning)
        text = (TESTDATA / f"{file}.textproto").read_text()
        text_format.Parse(text, parsed, descriptor_pool=pool)
    return [
        _case(file, f"{section.name}/{test.name}", test)
        for section in parsed.section  # type: ignore[attr-defined]
        for test in section.test
    ]


def all_cases() -> Iterator[Case]:
    for file in files():
        yield from load(file)


def _case(file: str, name: str, test: Any) -> Case:
    try:
        _check_scope(test)
        if any("." in name for name in test.bindings):
            raise OutOfScope(DOTTED_NAME)
        bindings = {key: _binding(value) for key, value in test.bindings.items()}
        expected = _expected(test)
    except OutOfScope as out:
        return Case(file, name, test.expr, excluded=str(out))
    return Case(file, name, test.expr, bindings, expected)


def _check_scope(test: Any) -> None:
    if test.check_only or test.WhichOneof("result_matcher") in ("unknown", "any_unknowns"):
        raise OutOfScope(UNKNOWNS)
    if test.disable_macros:
        raise OutOfScope(NO_MACROS)
    if test.container:
        raise OutOfScope(CONTAINER)
    if _MESSAGE_NAME.search(test.expr):
        raise OutOfScope(MESSAGES)


def _binding(expr_value: Any) -> Any:
    if expr_value.WhichOneof("kind") != "value":
        raise OutOfScope(UNKNOWNS)
    return _python(expr_value.value, binding=True)


def _expected(test: Any) -> Expected:
    matcher = test.WhichOneof("result_matcher")
    if matcher in ("eval_error", "any_eval_errors"):
        return Expected(error=True)
    if matcher == "typed_result":
        return Expected(value=_python(test.typed_result.result))
    if matcher == "value":
        return Expected(value=_python(test.value))
    return Expected(value=True)  # no matcher: the spec's default is `true`


def _python(value: Any, binding: bool = False) -> Any:
    """A cel.expr.Value as the engine holds it (bindings) or hands it back (results)."""
    kind = value.WhichOneof("kind")
    if kind == "null_value":
        return None
    if kind in ("bool_value", "int64_value", "string_value"):
        return getattr(value, kind)
    if kind == "uint64_value":
        if binding:
            raise OutOfScope(UINT_BINDING)
        return value.uint64_value  # a result: JSON has one integer type
    if kind == "double_value":
        if not math.isfinite(value.double_value):
            raise OutOfScope(NOT_FINITE)
        return value.double_value
    if kind == "bytes_value":
        raise OutOfScope(BYTES)
    if kind == "list_value":
        return [_python(v, binding) for v in value.list_value.values]
    if kind == "map_value":
        return _map(value.map_value, binding)
    if kind == "type_value":
        if binding:
            raise OutOfScope(MESSAGES)
        return value.type_value
    if kind == "object_value":
        return _object(value.object_value, binding)
    raise OutOfScope(MESSAGES)  # enum_value


def _map(map_value: Any, binding: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in map_value.entries:
        if entry.key.WhichOneof("kind") != "string_value":
            raise OutOfScope(MAP_KEYS)
        out[entry.key.string_value] = _python(entry.value, binding)
    return out


def _object(any_value: Any, binding: bool) -> Any:
    """Timestamps and durations arrive packed in Any; every other message is out of scope."""
    type_name = any_value.type_url.rsplit("/", 1)[-1]
    if type_name not in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        raise OutOfScope(MESSAGES)
    if binding:
        raise OutOfScope(TEMPORAL_BINDING)
    seconds, nanos = _seconds_nanos(any_value.value)
    if type_name == "google.protobuf.Duration":
        return duration_text(seconds, nanos)
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    fraction = f".{nanos:09d}".rstrip("0") if nanos else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def _seconds_nanos(payload: bytes) -> tuple[int, int]:
    # Timestamp and Duration have the same two fields (seconds, nanos).
    message = duration_pb2.Duration.FromString(payload)
    return message.seconds, message.nanos


def duration_text(seconds: int, nanos: int) -> str:
    """As CEL's ``string(duration)`` writes it: seconds with the fraction it needs, then "s"."""
    total = seconds * 10**9 + nanos
    sign = "-" if total < 0 else ""
    whole, fraction = divmod(abs(total), 10**9)
    return f"{sign}{whole}" + (f".{fraction:09d}".rstrip("0") if fraction else "") + "s"


def same(actual: Any, expected: Any) -> bool:
    """Equal and of the same JSON type (True is not 1, 1 is not 1.0), recursively."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, int) and isinstance(actual, int):
        return actual == expected
    if isinstance(expected, float) and isinstance(actual, float):
        return actual == expected
    if isinstance(expected, str) or expected is None:
        return actual == expected and type(actual) is type(expected)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(
            same(actual[k], expected[k]) for k in expected
        )
    return False
