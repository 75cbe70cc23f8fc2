"""VariableSubstitutor: `{variable}` substitution, pure and deterministic.

The rules (README "Substitution"), in the order the scanner applies them:

- ``{`` + a path + ``}`` is a reference. A path is dot-separated segments: the first an
  identifier (``[A-Za-z_][A-Za-z0-9_]*``), the rest identifiers, list indexes (``0``) or keys
  with dashes (``content-type``). A segment may not start with ``__``, so ``{a.__dict__}`` and
  ``{0.__class__}`` are plain text, never references. A segment of digits is an index, and
  an index is ``0`` or has no leading zero (RFC 6901's array index), so ``{items.01}`` is
  plain text too (see :func:`tokenize`'s ``strict_indexes`` for runs that predate the rule).
- ``{{`` writes a literal ``{`` and opens an escape that the next ``}}`` closes with a literal
  ``}``: ``{{name}}`` renders as ``{name}``. A ``}}`` with no ``{{`` before it is ordinary text,
  so a JSON example such as ``{"a": {"b": 1}}`` inside a prompt survives untouched.
- Any other brace is literal text.
- A string that is exactly one reference keeps the value's JSON type. Inside longer text,
  objects and lists render as JSON, strings as themselves, other scalars as JSON (``true``,
  ``null``, ``3.5``).
- Single pass: substituted values are never scanned again. There is no ``str.format`` and no
  ``eval``; paths are resolved by dictionary key and list index only, never attribute access.

Templates under a *deferred* root (``secrets``) are not resolved here: the workflow never sees
secret values. Instead the renderer records a :class:`DeferredSlot` (where in the rendered
value the string goes, and its parts) and leaves the template text in place; the activity fills
each slot by position, so a value that merely *looks* like ``{secrets.X}`` is never resolved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from workflows.errors import InvalidReferenceError, TemplateError

_FIRST_SEGMENT = r"(?!__)[A-Za-z_][A-Za-z0-9_]*"
_LATER_SEGMENT = r"(?!__)[A-Za-z0-9_][A-Za-z0-9_-]*"
_REFERENCE = re.compile(r"\{(" + _FIRST_SEGMENT + r"(?:\." + _LATER_SEGMENT + r")*)\}")
# The same, but a segment of digits only (an index) may not have a leading zero: "0" and
# "10" are indexes, "01" ends the match (the segment runs to the next "." or "}").
_STRICT_SEGMENT = r"(?!0[0-9]+[.}])" + _LATER_SEGMENT
_STRICT_REFERENCE = re.compile(r"\{(" + _FIRST_SEGMENT + r"(?:\." + _STRICT_SEGMENT + r")*)\}")

# Deep structures are refused rather than risking RecursionError.
MAX_TEMPLATE_DEPTH = 64

DEFERRED_ROOTS = frozenset({"secrets"})


@dataclass(frozen=True)
class Literal:
    """Plain text inside a template."""

    text: str


@dataclass(frozen=True)
class Reference:
    """A ``{path}`` reference; ``segments`` is the path split on dots."""

    path: str

    @property
    def segments(self) -> list[str]:
        return self.path.split(".")

    @property
    def root(self) -> str:
        return self.segments[0]


Token = Literal | Reference


def tokenize(template: str, strict_indexes: bool = True) -> list[Token]:
    """Split a template string into literal text and references (adjacent literals merged).

    ``strict_indexes`` (the rule everywhere: save-time checks, the API, runs started since
    the rule): a digits-only segment with a leading zero (``{items.01}``) makes the braces
    plain text. Without it, as runs started before the rule read their templates, such a
    segment is a reference (``01`` then indexes a list as ``1``). The interpreter decides once
    per run, with a Temporal patch marker, so a run keeps the reading it started with.
    """
    pattern = _STRICT_REFERENCE if strict_indexes else _REFERENCE
    tokens: list[Token] = []
    text: list[str] = []
    escape_depth = 0
    i = 0
    n = len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if template.startswith("{{", i):
                text.append("{")
                escape_depth += 1
                i += 2
                continue
            match = pattern.match(template, i)
            if match:
                if text:
                    tokens.append(Literal("".join(text)))
                    text = []
                tokens.append(Reference(match.group(1)))
                i = match.end()
                continue
        elif ch == "}" and escape_depth and template.startswith("}}", i):
            text.append("}")
            escape_depth -= 1
            i += 2
            continue
        text.append(ch)
        i += 1
    if text:
        tokens.append(Literal("".join(text)))
    return tokens


def references_in(
    value: Any, location: str = "$", strict_indexes: bool = True
) -> Iterator[tuple[str, Reference]]:
    """Yield ``(json_path, reference)`` for every reference in a JSON-like value."""
    stack: list[tuple[Any, str, int]] = [(value, location, 0)]
    while stack:
        current, where, depth = stack.pop()
        if depth > MAX_TEMPLATE_DEPTH:
            raise TemplateError(f"{where}: nested deeper than {MAX_TEMPLATE_DEPTH} levels")
        if isinstance(current, str):
            for token in tokenize(current, strict_indexes):
                if isinstance(token, Reference):
                    yield where, token
        elif isinstance(current, Mapping):
            for key, item in reversed(list(current.items())):
                stack.append((item, f"{where}.{key}", depth + 1))
        elif isinstance(current, list):
            for index in range(len(current) - 1, -1, -1):
                stack.append((current[index], f"{where}[{index}]", depth + 1))


def resolve(path: str, context: Mapping[str, Any]) -> Any:
    """Look a dotted path up in the context by key and list index only."""
    current: Any = context
    walked: list[str] = []
    for segment in path.split("."):
        if isinstance(current, Mapping):
            if segment not in current:
                if not walked:
                    raise InvalidReferenceError(path, f"no variable named '{segment}'")
                raise InvalidReferenceError(path, f"'{'.'.join(walked)}' has no key '{segment}'")
            current = current[segment]
        elif isinstance(current, list):
            if not segment.isdigit():
                raise InvalidReferenceError(
                    path, f"'{'.'.join(walked)}' is a list; '{segment}' is not an index"
                )
            index = int(segment)
            if index >= len(current):
                raise InvalidReferenceError(
                    path,
                    f"index {index} is out of range: '{'.'.join(walked)}' has {len(current)} items",
                )
            current = current[index]
        else:
            kind = "null" if current is None else type(current).__name__
            raise InvalidReferenceError(
                path, f"'{'.'.join(walked)}' is a {kind}, it has no '{segment}'"
            )
        walked.append(segment)
    return current


def to_text(value: Any) -> str:
    """Render a value inside longer text: strings as-is, everything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except RecursionError:
        raise TemplateError("a value is nested too deeply to render as text") from None


@dataclass(frozen=True)
class DeferredSlot:
    """A string in a rendered value that still holds deferred (secret) references.

    ``location`` is the key/index path from the rendered value's root; ``parts`` are the
    already-rendered literal pieces (``{"text": ...}``) and the deferred references
    (``{"ref": "secrets.NAME"}``) in order.
    """

    location: list[str | int]
    parts: list[dict[str, str]]


# How a reference inside longer text is written there: (the location of the string, the text
# rendered before the reference in it, the reference, its value as text) -> the text to insert.
# An agent's tool URL percent-encodes the model's arguments with it (workflows/kinds/tool_url.py).
Escape = Callable[[list[str | int], str, Reference, str], str]


class VariableSubstitutor:
    """Renders templates against an execution context (pure; safe inside workflow code)."""

    def __init__(
        self,
        context: Mapping[str, Any],
        deferred_roots: frozenset[str] = DEFERRED_ROOTS,
        strict_indexes: bool = True,
        escape: Escape | None = None,
    ) -> None:
        self._context = context
        self._deferred_roots = deferred_roots
        self._strict_indexes = strict_indexes  # see tokenize()
        self._escape = escape

    def render(self, value: Any) -> Any:
        """Render every string in ``value``; fails if any reference is deferred."""
        rendered, slots = self.render_deferred(value)
        if slots:
            raise TemplateError(
                "secret references can only be used in ai and http step fields; "
                f"found {slots[0].parts!r}"
            )
        return rendered

    def render_deferred(self, value: Any) -> tuple[Any, list[DeferredSlot]]:
        """Render ``value``; strings using deferred roots become slots for the activity."""
        slots: list[DeferredSlot] = []
        rendered = self._render(value, [], slots, 0)
        return rendered, slots

    def render_text(self, template: str) -> str:
        """Render a template and always return text (for messages and names)."""
        return to_text(self.render(template))

    def _render(
        self, value: Any, location: list[str | int], slots: list[DeferredSlot], depth: int
    ) -> Any:
        if depth > MAX_TEMPLATE_DEPTH:
            raise TemplateError(f"value nested deeper than {MAX_TEMPLATE_DEPTH} levels")
        if isinstance(value, str):
            return self._render_string(value, location, slots)
        if isinstance(value, Mapping):
            return {
                key: self._render(item, [*location, key], slots, depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [
                self._render(item, [*location, index], slots, depth + 1)
                for index, item in enumerate(value)
            ]
        return value

    def _render_string(
        self, template: str, location: list[str | int], slots: list[DeferredSlot]
    ) -> Any:
        if "{" not in template:
            return template
        tokens = tokenize(template, self._strict_indexes)
        if len(tokens) == 1 and isinstance(tokens[0], Reference):
            reference = tokens[0]
            if reference.root not in self._deferred_roots:
                return resolve(reference.path, self._context)
        parts: list[dict[str, str]] = []
        text: list[str] = []
        for token in tokens:
            if isinstance(token, Literal):
                text.append(token.text)
            elif token.root in self._deferred_roots:
                if text:
                    parts.append({"text": "".join(text)})
                    text = []
                parts.append({"ref": token.path})
            else:
                piece = to_text(resolve(token.path, self._context))
                if self._escape is not None:
                    before = "".join(p.get("text", "{" + p.get("ref", "") + "}") for p in parts)
                    piece = self._escape(location, before + "".join(text), token, piece)
                text.append(piece)
        if not parts:
            return "".join(text)
        if text:
            parts.append({"text": "".join(text)})
        slots.append(DeferredSlot(location=list(location), parts=parts))
        # The placeholder shows the template, never a value: history stays free of secrets.
        return "".join(p.get("text", "{" + p.get("ref", "") + "}") for p in parts)


def fill_deferred(value: Any, slots: list[DeferredSlot], lookup: Mapping[str, Any]) -> Any:
    """Fill deferred slots (activity side). ``lookup`` maps a root to its values."""
    for slot in slots:
        pieces = []
        for part in slot.parts:
            if "text" in part:
                pieces.append(part["text"])
            else:
                pieces.append(to_text(resolve(part["ref"], lookup)))
        filled = "".join(pieces)
        if not slot.location:
            value = filled
            continue
        container = value
        for key in slot.location[:-1]:
            container = container[key]
        container[slot.location[-1]] = filled
    return value
