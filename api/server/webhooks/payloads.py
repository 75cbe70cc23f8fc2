"""A delivery's body and headers as a run reads them: ``{body...}`` and ``{headers...}``.

Bodies are JSON (``application/json``, any ``+json`` type, or no Content-Type) or
``application/x-www-form-urlencoded``, parsed to an object (a repeated field becomes a list).
A form made of the scheme's one JSON field (GitHub's and Slack's ``payload``) is that JSON.
Anything else is 415, answered only after the signature was checked. Headers are a map of
lower-case names; credentials a proxy may add (``authorization``, ``cookie``) are left out,
since the map can end up in a run's inputs and logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from api.server.bodies import parse_json_body
from api.server.errors import ApiError

FORM = "application/x-www-form-urlencoded"
_PRIVATE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def delivery_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case name -> value (repeated headers joined with ', ')."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key not in _PRIVATE_HEADERS:
            found[key] = f"{found[key]}, {value}" if key in found else value
    return found


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def delivery_body(content_type: str | None, raw: bytes, json_field: str | None) -> Any:
    """The parsed body: 415 for a type that is neither JSON nor a form, 422 for bad JSON."""
    kind = media_type(content_type)
    if kind == FORM:
        return _form(raw, json_field)
    if kind in ("", "application/json") or kind.endswith("+json"):
        return parse_json_body(raw, blank={})
    raise ApiError(
        415,
        "unsupported_media_type",
        f"a webhook body is JSON (Content-Type: application/json) or a form ({FORM}), not '{kind}'",
    )


def _form(raw: bytes, json_field: str | None) -> Any:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(422, "invalid_input", "a form body must be UTF-8", "$") from None
    fields: dict[str, Any] = {}
    for name, value in pairs:
        held = fields.get(name)
        if held is None:
            fields[name] = value
        else:
            fields[name] = [*held, value] if isinstance(held, list) else [held, value]
    if (
        json_field is not None
        and list(fields) == [json_field]
        and isinstance(fields[json_field], str)
    ):
        return parse_json_body(fields[json_field], f"$.{json_field}")
    return fields
