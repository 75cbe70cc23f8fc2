"""The API's error shape, ``{"errors": [{"code", "message", "path"?}]}``, for every failure.

Routes raise :class:`ApiError`; FastAPI's own validation errors and HTTP errors are rendered
in the same shape, so a client parses one format. Bad input is never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workflows.errors import DefinitionError, Problem, ValueLimitError
from workflows.values import parse_json

logger = logging.getLogger(__name__)


class ApiError(Exception):
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

    @classmethod
    def from_definition_error(cls, err: DefinitionError) -> ApiError:
        return cls.from_problems(422, err.problems)


def parse_json_body(raw: bytes | str, path: str = "$") -> Any:
    """Parse a request body: not JSON, or a value no run could hold, is a 422.

    The limits are workflows/values.py's, the same the worker applies: what the API accepts,
    the worker can decode (too deep, NaN/Infinity/1e999, lone surrogates are refused here).
    """
    try:
        return parse_json(raw, path)
    except ValueLimitError as err:
        raise ApiError(422, "invalid_value", err.reason, err.path) from None
    except ValueError as err:
        raise ApiError(422, "invalid_json", f"not valid JSON: {err}", path) from None


def error_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"errors": errors}


def _location(loc: tuple[Any, ...]) -> str:
    path = "$"
    for part in loc:
        if part in ("body", "query", "path", "header"):
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.errors), exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "code": "invalid_request",
                "message": str(e.get("msg", "invalid")).removeprefix("Value error, "),
                "path": _location(tuple(e.get("loc", ()))),
            }
            for e in exc.errors()
        ]
        return JSONResponse(error_body(errors), 422)

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
