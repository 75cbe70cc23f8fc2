"""The error answers the routes declare in the OpenAPI document, in the API's error shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.server.schemas import ErrorResponse

Responses = dict[int | str, dict[str, Any]]


def errors(descriptions: Mapping[int, str | None]) -> Responses:
    """``responses`` for these statuses, each answering :class:`ErrorResponse` (a None
    description leaves FastAPI's default)."""
    return {
        status: {"model": ErrorResponse} | ({"description": text} if text else {})
        for status, text in descriptions.items()
    }


NOT_FOUND = errors({401: "No or unknown API key", 404: "No such execution (in the key's scope)"})
FORBIDDEN = errors({403: "The key's role cannot do this"})
NOT_RUNNING = errors({409: "The execution has already finished"})
