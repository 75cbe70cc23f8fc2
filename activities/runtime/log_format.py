"""LOG_FORMAT=json: one JSON object per line, with the execution and step a line is about.

Every line has ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``; lines logged
for a run add ``execution_id`` (the Temporal workflow id) and, inside a step's activity,
``step_id``; a logged exception adds ``exception``. Where they come from:

- activity code (ours, httpx's, the SDK's "Completing activity as failed"): ``activity.info()``
  gives the execution; :class:`StepContextInterceptor` keeps the step id of the activity's
  input for the activity's task;
- workflow code (``workflow.logger``): the workflow info the SDK attaches to the record;
- Core's forwarded lines (activities.runtime.temporal_runtime): the fields Core attached;
- anything else may pass ``extra={"execution_id": ..., "step_id": ...}``.

Only these fields are written: whatever else a record carries (``extra`` dicts, arguments)
never reaches the output unredacted. The message and exception text are what the handler's
filters left (the worker's RedactingFilter, activities/secrets.py, runs before formatting).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

# The step the current activity task runs (each activity runs in its own asyncio task, with
# its own copy of the context, so this never leaks into another activity).
_STEP_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("wfe_step_id", default=None)
CONTEXT_FIELDS = ("execution_id", "step_id")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = str(value)
        # Filters (redaction) leave exc_text set; format it here only when none ran.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class TemporalContextFilter(logging.Filter):
    """Adds ``execution_id`` and ``step_id`` to records logged for a run (worker side)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "execution_id", None) is None:
            execution_id = _execution_of(record)
            if execution_id is not None:
                record.execution_id = execution_id
        if getattr(record, "step_id", None) is None:
            step_id = _STEP_ID.get() if activity.in_activity() else None
            if step_id is not None:
                record.step_id = step_id
        return True


def _execution_of(record: logging.LogRecord) -> str | None:
    for attribute in ("temporal_activity", "temporal_workflow"):  # the SDK's logger adapters
        info = getattr(record, attribute, None)
        if isinstance(info, Mapping) and info.get("workflow_id"):
            return str(info["workflow_id"])
    if activity.in_activity():
        return activity.info().workflow_id
    core = getattr(record, "temporal_log", None)  # a forwarded Core line
    fields = getattr(core, "fields", None)
    if isinstance(fields, Mapping) and fields.get("workflow_id"):
        return str(fields["workflow_id"])
    return None


class StepContextInterceptor(Interceptor):
    """Worker interceptor: remembers the step id of each activity's input (``step_id`` of
    HTTPRequest / AIRequest) for the lines logged while it runs and as it completes."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StepContextInbound(next)


class _StepContextInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        step_id = getattr(input.args[0], "step_id", None) if input.args else None
        # Not reset afterwards: the SDK logs the activity's failure after this returns, in the
        # same task, and the task (with its context) ends with the activity.
        _STEP_ID.set(step_id if isinstance(step_id, str) else None)
        return await super().execute_activity(input)


def configure_logging(log_format: str, root: logging.Logger | None = None) -> None:
    """For ``json``: every handler of ``root`` (one to stderr if it has none) writes JSON
    with the run's context. ``text`` leaves logging as it is. Install redaction afterwards:
    it covers the handlers present when it is installed.

    For the process's own root logger (``root`` None) it also makes the SDK's loggers stop
    appending their info dict to messages (the ids are fields now) and routes
    ``warnings.warn`` through logging, so nothing reaches stderr that is not JSON.
    """
    if log_format != "json":
        return
    process_wide = root is None
    root = root or logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    context = TemporalContextFilter()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
        if not any(isinstance(f, TemporalContextFilter) for f in handler.filters):
            handler.addFilter(context)
    if process_wide:
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
        logging.captureWarnings(True)
