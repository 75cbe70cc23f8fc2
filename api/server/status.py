"""Bounded status answers (README "HTTP API", workflows/status_view.py).

`GET /api/executions/{id}` asks the worker's ``status_view`` query, whose answer summarises
every value over 4 KiB, so a viewer polling a run holding megabytes costs that run's worker
kilobytes. ``?include=variables`` asks for the variables in full (``&variable=NAME``, repeated:
only those), up to API_STATUS_MAX_BYTES in all, else 413. A finished run's answer comes from
its result or a replay, never changes, and is kept (summarised) for the next poll.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from activities.runtime.settings import Settings
from api.server.errors import ApiError
from api.server.schemas import ExecutionPublic
from workflows.messages import (
    STATUS_QUERY,
    STATUS_VIEW_QUERY,
    ExecutionState,
    ExecutionView,
    StatusRequest,
)
from workflows.status_view import status_view

logger = logging.getLogger(__name__)

QUERY_TIMEOUT = timedelta(seconds=5)
# Finished runs' default answers kept per API process (each at most ~100 kB: summarised).
CLOSED_ANSWERS = 128
# What a signal needs to know (what the run waits for, its unread signals): no values at all.
SIGNAL_CHECK = StatusRequest(variables="none")


def status_request(
    settings: Settings, include: str | None, names: list[str] | None
) -> StatusRequest:
    """The query argument for ``?include=variables`` and ``?variable=NAME``."""
    if include not in (None, "variables"):
        raise ApiError(422, "invalid_request", "include takes one value: variables", "$.include")
    full = include == "variables" or bool(names)
    return StatusRequest(
        variables="full" if full else "summary",
        names=names or None,
        max_bytes=settings.api_status_max_bytes,
    )


def refuse_too_large(view: ExecutionView, execution_id: str, request: StatusRequest) -> None:
    """A full answer the query refused to build: 413, saying how to read the values."""
    if view.variables_bytes is None:
        return
    raise ApiError(
        413,
        "status_too_large",
        f"the variables of execution '{execution_id}' asked for are {view.variables_bytes:,} "
        f"bytes; the limit is {request.max_bytes:,} (API_STATUS_MAX_BYTES): ask for fewer "
        "with ?include=variables&variable=NAME, or read the log (GET .../log)",
        "$.include",
    )


async def query_view(
    handle: WorkflowHandle[Any, Any], request: StatusRequest
) -> ExecutionView | None:
    """The worker's ``status_view`` answer; from a worker older than that query, its full
    ``status`` summarised here. None when no worker answered."""
    try:
        return await handle.query(
            STATUS_VIEW_QUERY, request, result_type=ExecutionView, rpc_timeout=QUERY_TIMEOUT
        )
    except WorkflowQueryFailedError as err:
        if STATUS_VIEW_QUERY not in str(err):
            logger.warning("status query for %s failed: %s", handle.id, err)
            return None
    except RPCError as err:
        logger.warning("status query for %s failed: %s", handle.id, err)
        return None
    try:  # an older worker: only the full query exists
        state = await handle.query(
            STATUS_QUERY, result_type=ExecutionState, rpc_timeout=QUERY_TIMEOUT
        )
    except (WorkflowQueryFailedError, RPCError) as err:
        logger.warning("status query for %s failed: %s", handle.id, err)
        return None
    return status_view(state, request)


class ClosedAnswers:
    """Default answers of finished runs, by execution and run id (least recent dropped)."""

    def __init__(self, size: int = CLOSED_ANSWERS) -> None:
        self._size = size
        self._answers: OrderedDict[tuple[str, str], ExecutionPublic] = OrderedDict()

    def get(self, execution_id: str, run_id: str) -> ExecutionPublic | None:
        answer = self._answers.get((execution_id, run_id))
        if answer is not None:
            self._answers.move_to_end((execution_id, run_id))
        return answer

    def put(self, execution_id: str, run_id: str, answer: ExecutionPublic) -> None:
        self._answers[(execution_id, run_id)] = answer
        self._answers.move_to_end((execution_id, run_id))
        while len(self._answers) > self._size:
            self._answers.popitem(last=False)
