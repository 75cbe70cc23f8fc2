"""What a value entering a run may be: the one set of limits the API and the worker share.

Anything the API accepts must be something the worker can decode and hold, or the run is
poisoned: every workflow task fails on it, forever. So one check, used by the API on every
JSON body (inputs, signal payloads, definitions) and by the interpreter on every value it
computes (``set``, CEL results, signal payloads):

- nesting at most ``MAX_VALUE_DEPTH`` levels (the worker's payload decoding gives up near 200);
- numbers finite (``NaN``, ``Infinity`` and ``1e999`` have no JSON form and would silently
  become ``null``);
- text encodable as UTF-8 (a lone surrogate such as ``"\\ud800"`` cannot be sent anywhere);
- a computed value at most ``max_bytes`` as JSON (``MAX_VALUE_BYTES``; results of activity
  steps are stored by reference instead, see README "Long runs and large values").

Pure: no settings, no I/O; the limits are passed in.
"""

from __future__ import annotations

import json
import math
from typing import Any

from workflows.errors import ValueLimitError

MAX_VALUE_DEPTH = 64
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024


def check_value(value: Any, path: str = "$", max_bytes: int | None = None) -> None:
    """Raise ValueLimitError for the first problem found; walks without recursion."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        current, where, depth = stack.pop()
        if depth > MAX_VALUE_DEPTH:
            raise ValueLimitError(
                f"nested deeper than {MAX_VALUE_DEPTH} levels (the limit for any value)", where
            )
        if isinstance(current, float) and not math.isfinite(current):
            raise ValueLimitError(
                f"{current!r} is not a finite number (JSON has no NaN or infinity)", where
            )
        if isinstance(current, str):
            _check_text(current, where)
        elif isinstance(current, dict):
            for key, item in current.items():
                key_text = str(key)
                _check_text(key_text, where)
                stack.append((item, f"{where}.{key_text}", depth + 1))
        elif isinstance(current, list | tuple):
            for index, item in enumerate(current):
                stack.append((item, f"{where}[{index}]", depth + 1))
    if max_bytes is not None:
        size = json_size(value)
        if size > max_bytes:
            raise ValueLimitError(
                f"is {size:,} bytes as JSON; the limit is {max_bytes:,} (MAX_VALUE_BYTES, or the "
                "definition's limits.max_value_bytes)",
                path,
            )


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueLimitError(
            f"text holds {text[err.start : err.end]!r}, a lone surrogate, which is not valid "
            "Unicode text; send the character itself or its surrogate pair",
            where,
        ) from None


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (what it costs in history and in answers)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode())


def parse_json(raw: bytes | str, path: str = "$") -> Any:
    """Parse JSON text and check the value; ValueError for text that is not JSON."""

    def refuse_constant(name: str) -> Any:
        raise ValueLimitError(f"{name} is not JSON (JSON has no NaN or infinity)", path)

    try:
        value = json.loads(raw, parse_constant=refuse_constant)
    except RecursionError:
        raise ValueLimitError(
            f"nested deeper than {MAX_VALUE_DEPTH} levels (the limit for any value)", path
        ) from None
    check_value(value, path)
    return value
