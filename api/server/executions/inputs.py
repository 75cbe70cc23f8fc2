"""The one input check of a run request (an API start, a rerun, a webhook delivery)."""

from __future__ import annotations

import json
from typing import Any

from api.server.errors import ApiError
from api.server.store import StoredDefinition
from workflows.run_inputs import checked_inputs


def prepare_inputs(
    stored: StoredDefinition, input_vars: Any, max_bytes: int, where: str = "$.input_vars"
) -> dict[str, Any]:
    """The run's variables: ``input_vars`` within API_MAX_INPUT_BYTES (``max_bytes``) and the
    definition's ``inputs`` (defaults filled in); every problem of the request in one 422."""
    size = len(json.dumps(input_vars, separators=(",", ":"), default=str))
    if size > max_bytes:
        raise ApiError(
            413,
            "input_too_large",
            f"input_vars is {size} bytes; the limit is {max_bytes} (API_MAX_INPUT_BYTES)",
            where,
        )
    filled, problems = checked_inputs(stored.definition.inputs, input_vars, where)
    if problems:
        raise ApiError.from_problems(422, problems)
    return filled
