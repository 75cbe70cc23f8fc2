"""A webhook trigger's ``filter``: CEL over ``headers`` and ``body``, checked when the definition
is saved (workflows/validation.py) and evaluated here for every verified delivery.

An evaluation error (a field the delivery lacks, say ``body.ref`` on an event without it)
counts as false: the sender gets 200 ``{"ignored": true, "reason": ...}``, since a retry
would fail the same way. Test optional fields with ``has(body.ref)``.
"""

from __future__ import annotations

import logging
from typing import Any

from workflows.conditions import evaluate_condition
from workflows.errors import ConditionError

logger = logging.getLogger(__name__)


def filtered_out(expression: str, headers: dict[str, str], body: Any) -> dict[str, Any] | None:
    """None when the delivery passes; else the 200 answer that starts nothing."""
    try:
        passes = evaluate_condition(expression, {"headers": headers, "body": body})
    except ConditionError as err:
        logger.warning("webhook filter %r could not be evaluated: %s", expression, err)
        return {"ignored": True, "reason": f"the filter could not be evaluated: {err}"}
    return None if passes else {"ignored": True}
