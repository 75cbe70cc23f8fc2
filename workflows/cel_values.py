"""CEL values in and out of the conformant evaluator, as JSON the run can hold.

A run's values are JSON, so a result is converted (and a map's order fixed) here:

- ``uint`` becomes a JSON integer, ``double`` a number, ``null`` null;
- a timestamp becomes RFC 3339 text in UTC with ``Z`` (``2009-02-13T23:31:30Z``, the fraction
  as long as it needs), as ``string(timestamp)`` writes it;
- a duration becomes text as ``string(duration)`` writes it (``"3600s"``, ``"1.5s"``);
- a type becomes its CEL name (``"int"``, ``"list"``, ``"google.protobuf.Timestamp"``);
- a map becomes an object with its keys in :func:`key_order`, keys as text (``true``,
  ``"1"``); ``bytes`` are refused (no JSON form): convert them with ``string()``.

:func:`key_order` is also the order comprehensions iterate a map in (workflows.cel_ast).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.errors import ConditionError

_TYPE_NAMES = {
    "null": "null_type",
    "timestamp": "google.protobuf.Timestamp",
    "duration": "google.protobuf.Duration",
}


def key_order(key: Any) -> tuple[int, Any]:
    """false < true < numbers (ascending) < text (by code point): any mix of key types sorts."""
    if isinstance(key, bool):
        return (0, key)
    if isinstance(key, int | float):
        return (1, key)
    return (2, str(key))


def sorted_keys(value: dict[Any, Any], size: int | None = None) -> list[Any]:
    """The keys in :func:`key_order`. ``size``: the map's size in CEL, where ``true`` and ``1``
    are two keys (a Python dict merges them: such a map cannot be iterated in order)."""
    if size is not None and len(value) != size:
        raise ValueError("a map with both true and 1 (or false and 0) as keys cannot be iterated")
    return sorted(value, key=key_order)


def pairs_to_map(pairs: list[list[Any]]) -> dict[Any, Any]:
    """transformMap's [key, value] pairs as a map (their keys are a range's: unique)."""
    return {key: value for key, value in pairs}


def to_json(value: Any, expression: str) -> Any:
    """A result (cel-expr-python's plain value) as the run holds it; see the module docstring."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return timestamp_text(value)
    if isinstance(value, timedelta):
        return duration_text(value)
    if isinstance(value, list | tuple):
        return [to_json(item, expression) for item in value]
    if isinstance(value, dict):
        return _object(value, expression)
    if isinstance(value, bytes | bytearray):
        raise ConditionError(
            f"expression {expression!r} gave bytes, which a run cannot hold; "
            "convert them with string()"
        )
    name = getattr(value, "name", None)  # a type value (cel.Type)
    if callable(name):
        plain = str(name()).split("<")[0].lower()
        return _TYPE_NAMES.get(plain, plain)
    raise ConditionError(f"expression {expression!r} gave a {type(value).__name__}")


def _object(value: dict[Any, Any], expression: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted_keys(value):
        text = key_text(key)
        if text in out:
            raise ConditionError(
                f"expression {expression!r} gave a map whose keys collide as JSON text ({text!r})"
            )
        out[text] = to_json(value[key], expression)
    return out


def key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def timestamp_text(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``; the fraction of a second only as long as it needs."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + fraction + "Z"


def duration_text(duration: timedelta) -> str:
    """Seconds with the fraction they need, then ``s``: ``"3600s"``, ``"-1.5s"``."""
    micros = (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}" + (f".{fraction:06d}".rstrip("0") if fraction else "") + "s"
