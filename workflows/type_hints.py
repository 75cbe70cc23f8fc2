"""Where a variable's type comes from, in words, for the hints of type errors
(workflows/type_checks.py): ``n is an integer input (inputs.properties.n)``."""

from __future__ import annotations

from typing import Any, Protocol

_SCHEMA_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "a boolean",
    "null": "a null",
    "array": "an array",
    "object": "an object",
}


class HasOrigin(Protocol):
    @property
    def origin(self) -> str | None: ...


def input_origin(name: str, declared: Any) -> str:
    """``an integer input (inputs.properties.n)``, or ``an input`` where the schema says no
    single type."""
    kind = declared.get("type") if isinstance(declared, dict) else None
    words = _SCHEMA_WORDS.get(kind, "an") if isinstance(kind, str) else "an"
    where = f"inputs.properties.{name}" if isinstance(declared, dict) else "inputs"
    return f"{words} input ({where})"


def origin_hint(name: str, var: HasOrigin | None) -> str:
    """``n is an integer input (inputs.properties.n)``, or nothing when unknown."""
    if var is None or not var.origin:
        return ""
    return f"{name} is {var.origin}"
