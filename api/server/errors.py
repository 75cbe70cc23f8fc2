"""The API's error shape, ``{"errors": [{"code", "message", "path"?}]}``, for every failure.

Routes raise :class:`ApiError`; validation errors (FastAPI's, and the request models' in
api/server/bodies.py) and HTTP errors are rendered in the same shape by the handlers here, so
a client parses one format. Bad input is never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workflows.errors import EngineError, Problem, json_path

logger = logging.getLogger(__name__)

# The part of the request FastAPI names first in an error's location (not part of the path).
_REQUEST_PARTS = frozenset({"body", "query", "path", "header", "cookie"})


class ServerError(EngineError):
    """The HTTP API's errors (the tree is drawn in workflows/errors.py)."""


class DefinitionNotFound(ServerError, LookupError):
    """No saved definition (or version) by that id."""


class DuplicateStart(ServerError):
    """The execution an idempotency key names exists already (``start(refuse_duplicate=True)``)."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(execution_id)
        self.execution_id = execution_id


class ApiError(ServerError):
    """An error answer: status code plus one or more (code, message, path) entries."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        path: str | None = None,
        headers: dict[str, str] | None = None,
        more: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        entry: dict[str, Any] = {"code": code, "message": message}
        if path is not None:
            entry["path"] = path
        self.errors = [entry, *(more or [])]
        self.headers = headers

    @classmethod
    def from_problems(cls, status_code: int, problems: list[Problem]) -> ApiError:
        first, *rest = problems or [Problem("$", "invalid")]
        return cls(
            status_code, first.code, first.message, first.path, more=[p.as_dict() for p in rest]
        )


def error_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": errors}


def invalid_request(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The one translation of validation errors (pydantic's, as FastAPI reports them) into the
    API's entries: code ``invalid_request``, pydantic's message, the JSON path of the value
    within its part of the request (``$.workflow_id`` in the body, ``$.status`` in the query)."""
    entries = []
    for error in errors:
        location = tuple(error.get("loc", ()))
        if location and location[0] in _REQUEST_PARTS:
            location = location[1:]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        entries.append({"code": "invalid_request", "message": message, "path": json_path(location)})
    return entries


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.errors), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(invalid_request(exc.errors())), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body([{"code": code, "message": str(exc.detail)}]),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            error_body([{"code": "internal_error", "message": "internal error; see server logs"}]),
            500,
        )
