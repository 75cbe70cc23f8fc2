"""The status answer with its large values summarised (the ``status_view`` query).

Why: the status query is answered by the worker that runs the execution, on the workflow's
task thread, and its result is serialised (and, past LARGE_VALUE_BYTES, written to the
payload store) on every poll. A run holding a few megabytes of http results made each viewer's
poll cost megabytes of work on that worker, and so slowed every run it served. Here a value
larger than ``value_bytes`` (4 KiB) becomes a summary::

    {"$summary": {"type": "object", "bytes": 2097152, "length": 2, "keys": ["items", "total"]}}

(``keys``: the first ten; a string also has a ``preview`` of its first 100 characters). An
object's own fields are looked at first, so an http result keeps its small ``status`` and
``headers`` and only its large ``json`` or ``text`` is summarised. Values are kept as they are
only while ``budget_bytes`` (64 KiB) lasts, the outputs first, then the step records' outputs
from the newest: the answer stays small however many values a run holds. ``full`` answers the
variables (or the ``names`` asked for) as they are, unless they exceed ``max_bytes``: then
summaries, with ``variables_bytes`` saying how large they are (the API answers 413).

Deterministic-core rules apply (nothing here reaches settings, the network or the disk); a
query writes nothing to history, so the size cache below changes no replay.
"""

from __future__ import annotations

import json
from itertools import islice
from typing import Any

from workflows.messages import ExecutionState, ExecutionView, StatusRequest, StepRecord

SUMMARY = "$summary"
KEYS_SHOWN = 10
PREVIEW_CHARS = 100
# An object with more fields than this is summarised whole rather than field by field.
FIELDS_LOOKED_AT = 20
# A value this small is always kept: its summary would be larger than the value.
ALWAYS_KEPT = 64
# Sizes are measured exactly up to this; past it a summary says only `bytes_over`.
SIZE_CAP = 8 * 1024 * 1024


def json_bytes(value: Any) -> int:
    """The size of ``value`` as compact UTF-8 JSON."""
    kind = type(value)
    if kind is str and value.isascii() and value.isprintable():
        # The common case without encoding it: quotes, and a backslash for `"` and `\`.
        return len(value) + 2 + value.count('"') + value.count("\\")
    if kind is int:
        return len(str(value))  # the json module writes ints as str() does
    if kind is bool or value is None:
        return 4 if value is not False else 5
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode())


def size_upto(value: Any, cap: int) -> int:
    """``value``'s compact JSON size when it is at most ``cap``, else a number over ``cap``,
    found without walking (or encoding) more than about ``cap`` bytes of it."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += (len(item) + 2) if len(item) > cap else json_bytes(item)
        elif isinstance(item, dict):
            total += 1 + max(2 * len(item), 1)  # braces, colons and commas
            if total > cap:
                return cap + 1  # before looking at its fields: a huge object costs nothing
            for key, child in item.items():
                total += json_bytes(key) if isinstance(key, str) else len(str(key)) + 2
                stack.append(child)
        elif isinstance(item, list | tuple):
            total += 1 + max(len(item), 1)  # brackets and commas
            if total > cap:
                return cap + 1
            stack.extend(item)
        else:
            total += json_bytes(item)
        if total > cap:
            return cap + 1
    return total


class Sizes:
    """Exact sizes of large values, kept between queries by identity: a run's values are the
    same objects from one poll to the next, so each is measured once. Only the values of the
    latest answer are remembered (a loop rebinding a large variable leaks nothing)."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[Any, int]] = {}
        self._used: dict[int, tuple[Any, int]] = {}

    def of(self, value: Any) -> int:
        """The size, exact up to SIZE_CAP (past it, SIZE_CAP + 1: measuring a hundred
        megabytes on the workflow's thread would stall it past Temporal's deadlock check)."""
        hit = self._known.get(id(value))
        size = hit[1] if hit is not None and hit[0] is value else size_upto(value, SIZE_CAP)
        self._used[id(value)] = (value, size)
        return size

    def done(self) -> None:
        self._known, self._used = self._used, {}


class Summariser:
    """One answer's worth of summarising: the byte budget left, what was summarised."""

    def __init__(self, request: StatusRequest, sizes: Sizes | None) -> None:
        """``sizes`` None: summaries do not measure (they say only ``bytes_over``)."""
        self._limit = request.value_bytes
        self._left = request.budget_bytes
        self._sizes = sizes

    def value(self, value: Any, depth: int = 0) -> tuple[Any, bool]:
        """(``value`` or its summary, whether anything in it was summarised)."""
        size = size_upto(value, self._limit)
        if size <= ALWAYS_KEPT or (size <= self._limit and size <= self._left):
            self._left -= size
            return value, False
        if isinstance(value, dict) and depth == 0 and 0 < len(value) <= FIELDS_LOOKED_AT:
            return {key: self.value(item, depth + 1)[0] for key, item in value.items()}, True
        return self.summary(value), True

    def summary(self, value: Any) -> dict[str, Any]:
        about: dict[str, Any] = {"type": _type_name(value)}
        size = self._sizes.of(value) if self._sizes is not None else None
        if size is None or size > SIZE_CAP:
            about["bytes_over"] = self._limit if size is None else SIZE_CAP  # not measured
        else:
            about["bytes"] = size
        if isinstance(value, dict):
            about["length"] = len(value)
            about["keys"] = [str(key) for key in islice(value, KEYS_SHOWN)]
        elif isinstance(value, list | tuple | str):
            about["length"] = len(value)
        if isinstance(value, str):
            about["preview"] = value[:PREVIEW_CHARS]
        return {SUMMARY: about}

    def variables(self, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        shown, summarised = {}, []
        for name, value in values.items():
            shown[name], changed = self.value(value)
            if changed:
                summarised.append(name)
        return shown, summarised

    def steps(self, steps: list[StepRecord]) -> list[StepRecord]:
        """Step records with their outputs summarised, the newest first in line."""
        out = list(steps)
        for index in range(len(out) - 1, -1, -1):
            record = out[index]
            if record.output_vars:
                shown, summarised = self.variables(record.output_vars)
                if summarised:
                    out[index] = record.model_copy(update={"output_vars": shown})
        return out


# A step record keeps a value of at most this size as it is (and this much in all): a record
# travels in activity inputs, the log and the run's result, which must not grow with the
# values a run handles. Larger values are summarised there; the variables keep them whole.
RECORD_VALUE_BYTES = 64 * 1024
RECORD_BUDGET_BYTES = 256 * 1024


def record_outputs(values: dict[str, Any]) -> dict[str, Any]:
    """A step record's ``output_vars``: ``values``, with any over RECORD_VALUE_BYTES
    summarised (``{"$summary": ...}``)."""
    if not values:
        return values
    request = StatusRequest(value_bytes=RECORD_VALUE_BYTES, budget_bytes=RECORD_BUDGET_BYTES)
    # Not measured: a record is made on the workflow's thread, where every millisecond spent
    # on a large value holds up the run (and, past two seconds, trips the deadlock check).
    shown, summarised = Summariser(request, None).variables(values)
    return shown if summarised else values


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "number" if isinstance(value, int | float) else "null" if value is None else "other"


def status_view(
    state: ExecutionState, request: StatusRequest | None = None, sizes: Sizes | None = None
) -> ExecutionView:
    """``state`` as the ``status_view`` query answers it for ``request``."""
    request = request or StatusRequest()
    sizes = sizes or Sizes()
    fields = dict(state)
    if request.variables == "none":
        fields.update(outputs={}, steps=[])
        return ExecutionView(**fields)
    summariser = Summariser(request, sizes)
    too_large: int | None = None
    wanted: set[str] = set()
    if request.variables == "full":
        wanted = set(state.outputs) if request.names is None else set(request.names)
        total = sum(_size(v, request, sizes) for k, v in state.outputs.items() if k in wanted)
        if total > request.max_bytes:
            too_large, wanted = total, set()
    rest, summarised = summariser.variables(
        {k: v for k, v in state.outputs.items() if k not in wanted}
    )
    fields.update(
        outputs={k: rest.get(k, v) for k, v in state.outputs.items()},
        steps=summariser.steps(list(state.steps)),
        summarised=summarised,
        variables_bytes=too_large,
    )
    sizes.done()
    return ExecutionView(**fields)


def _size(value: Any, request: StatusRequest, sizes: Sizes) -> int:
    """Enough of the size to compare with ``max_bytes`` (never a walk much past it)."""
    small = size_upto(value, request.value_bytes)
    if small <= request.value_bytes:
        return small
    known = sizes.of(value)
    return known if known <= SIZE_CAP else size_upto(value, request.max_bytes)
