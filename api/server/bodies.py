"""Request bodies: JSON read under the limits every value of a run holds to, then validated
into the route's request model (``XxxCreate`` in api/server/schemas.py).

A body that is not JSON is ``invalid_json``; JSON no run could hold (too deep, NaN, a lone
surrogate) is ``invalid_value``; JSON the model refuses is ``invalid_request``, every problem
at its JSON path, through the one validation-error handler of api/server/errors.py.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from api.server.errors import ApiError
from workflows.values import ValueLimitError, parse_json

Model = TypeVar("Model", bound=BaseModel)
_NO_DEFAULT: Any = object()


def parse_json_body(raw: bytes | str, path: str = "$", blank: Any = _NO_DEFAULT) -> Any:
    """Parse a request body (or a form field holding JSON): not JSON, or a value no run could
    hold, is a 422; a blank one is ``blank`` when given.

    The limits are workflows/values.py's, the same the worker applies: what the API accepts,
    the worker can decode (too deep, NaN/Infinity/1e999, lone surrogates are refused here).
    """
    if blank is not _NO_DEFAULT and not raw.strip():
        return blank
    try:
        return parse_json(raw, path)
    except ValueLimitError as err:
        raise ApiError(422, "invalid_value", err.reason, err.path) from None
    except ValueError as err:
        raise ApiError(422, "invalid_json", f"not valid JSON: {err}", path) from None


def validated(model: type[Model], data: Any) -> Model:
    """``data`` as ``model``; refused, it is answered as FastAPI's own body errors are."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        errors = err.errors(include_url=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None


class OptionalBody(Generic[Model]):
    """A route dependency: the JSON body as ``model``; no body (blank, or ``null``) is ``{}``,
    so the model's defaults."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model

    async def __call__(self, request: Request) -> Model:
        data = parse_json_body(await request.body(), blank=None)
        return validated(self.model, {} if data is None else data)

    def openapi(self) -> dict[str, Any]:
        """The route's ``openapi_extra``: the body is documented as the model, not required."""
        return request_body(self.model.model_json_schema(), required=False)


def request_body(schema: dict[str, Any], required: bool, **extra: Any) -> dict[str, Any]:
    """An ``openapi_extra`` declaring a JSON request body the route reads itself."""
    json_body = {"schema": schema, **extra}
    return {"requestBody": {"required": required, "content": {"application/json": json_body}}}
