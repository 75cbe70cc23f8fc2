"""The rest of a document whose shape is invalid, so its other problems are found in the same
answer (workflows/validation.py ``check_definition``).

Each step with a shape error (the innermost one, when a nested step has it) is replaced by a
valid stand-in that the checks treat as *opaque* (workflows/step_graph.py): it leads anywhere
in its list and binds what its raw ``output`` (or a ``set`` step's raw names) says, or any
name when that cannot be read. Other top-level fields with shape errors are left out
(``triggers``, ``defaults``...), except ``inputs`` and the ``steps`` list itself: without them
nothing else can be checked soundly, and only the shape problems are answered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from workflows.definition import WorkflowDefinition
from workflows.errors import json_path
from workflows.step_graph import Opaque

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_NEEDED = frozenset({"inputs", "steps"})

Location = Sequence[str | int]


def salvage(
    document: dict[str, Any], locations: Sequence[Location]
) -> tuple[WorkflowDefinition, dict[str, Opaque]] | None:
    """The document with stand-ins for its invalid steps, and those steps by JSON path; None
    when the errors leave nothing that can be checked soundly."""
    bad: set[tuple[str | int, ...]] = set()
    copy = dict(document)
    for location in locations:
        head = location[0] if location else None
        if head == "steps":
            step = _innermost_step(location)
            if step is None:
                return None
            bad.add(step)
        elif head is None or head in _NEEDED:
            return None
        elif head == "id":
            copy["id"] = "salvaged"
        else:
            copy.pop(str(head), None)
    outermost = [path for path in bad if not any(path[:n] in bad for n in range(2, len(path)))]
    taken = _raw_ids(document)
    opaque: dict[str, Opaque] = {}
    try:
        for path in sorted(outermost, key=len):
            raw = _get(document, path)
            _put(copy, path, _stand_in(raw, taken))
            opaque[json_path(path)] = Opaque(_raw_binds(raw))
        return WorkflowDefinition.model_validate(copy), opaque
    except (ValidationError, LookupError, TypeError):
        return None


def _innermost_step(location: Location) -> tuple[str | int, ...] | None:
    """The path of the innermost step a location is in (``("steps", 1, "steps", 0)``)."""
    found = None
    for i in range(len(location) - 1):
        if location[i] == "steps" and isinstance(location[i + 1], int):
            found = tuple(location[: i + 2])
    return found


def _get(document: Any, path: Location) -> Any:
    node = document
    for part in path:
        node = node[part]
    return node


def _put(root: dict[str, Any], path: Location, value: Any) -> None:
    """Set ``value`` at ``path``, copying each container on the way (the caller's document
    is left as it was)."""
    node: Any = root
    for part in path[:-1]:
        child = node[part]
        child = dict(child) if isinstance(child, dict) else list(child)
        node[part] = child
        node = child
    node[path[-1]] = value


def _stand_in(raw: Any, taken: set[str]) -> dict[str, Any]:
    """A valid step in the raw step's place, with its id when that id is valid."""
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(raw_id, str) and _ID.match(raw_id):
        step_id = raw_id
    else:
        number = 0
        while f"invalid-step-{number}" in taken:
            number += 1
        step_id = f"invalid-step-{number}"
        taken.add(step_id)
    return {"id": step_id, "type": "set", "values": {"_": None}}


def _raw_ids(document: Any) -> set[str]:
    """Every string under an ``id`` key anywhere in the document (stand-ins avoid them)."""
    found: set[str] = set()
    work = [document]
    while work:
        node = work.pop()
        if isinstance(node, dict):
            if isinstance(node.get("id"), str):
                found.add(node["id"])
            work.extend(node.values())
        elif isinstance(node, list):
            work.extend(node)
    return found


def _raw_binds(raw: Any) -> frozenset[str] | None:
    """The names an invalid step would bind, read from its raw fields; None: any name."""
    if not isinstance(raw, dict):
        return None
    names: set[str] = set()
    output = raw.get("output")
    if output is not None:
        if not isinstance(output, str) or not _NAME.match(output):
            return None
        names.add(output)
    for field in ("values", "compute"):
        given = raw.get(field)
        if given is None:
            continue
        if not isinstance(given, dict) or not all(
            isinstance(k, str) and _NAME.match(k) for k in given
        ):
            return None
        names.update(given)
    return frozenset(names)
