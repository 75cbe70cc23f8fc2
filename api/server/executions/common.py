"""What every part of the execution service shares: Temporal's statuses as the API says them,
the links of an answer, and the answer for an execution it cannot find."""

from __future__ import annotations

import logging
from typing import Any

from temporalio.api.enums.v1 import WorkflowExecutionStatus

from activities.runtime.settings import Settings
from api.server.errors import ApiError

# One logger for the package: its records keep the name they had before it was split.
logger = logging.getLogger("api.server.executions")

STATUSES = ("running", "completed", "failed", "cancelled", "terminated")

_TEMPORAL_STATUS = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING: ("RUNNING", "running"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED: ("COMPLETED", "completed"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED: ("FAILED", "failed"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED: ("CANCELED", "cancelled"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED: ("TERMINATED", "terminated"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: ("TIMED_OUT", "terminated"),
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: (
        "CONTINUED_AS_NEW",
        "running",
    ),
}


def temporal_status(status: Any) -> tuple[str, str]:
    """(Temporal's name, our status) for a WorkflowExecutionStatus."""
    return _TEMPORAL_STATUS.get(status, ("RUNNING", "running"))


class Links:
    """Where an execution is: its API resources and its page in the Temporal UI."""

    def __init__(self, settings: Settings) -> None:
        self._ui = f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"

    def ui(self, execution_id: str, run_id: str | None = None) -> str:
        return f"{self._ui}/workflows/{execution_id}" + (f"/{run_id}/history" if run_id else "")

    def of(self, execution_id: str, run_id: str | None) -> dict[str, str]:
        return {
            "self": f"/api/executions/{execution_id}",
            "log": f"/api/executions/{execution_id}/log",
            "temporal_ui": self.ui(execution_id, run_id),
        }


def not_found(execution_id: str) -> ApiError:
    return ApiError(404, "execution_not_found", f"no execution '{execution_id}'")
