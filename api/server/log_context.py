"""LOG_FORMAT=json for the API process: uvicorn's lines and ours as JSON, redacted, with the
``execution_id`` of the request they were logged for (routes under /api/executions/{id}).

Uvicorn configures its own loggers before it builds the app (``--factory``), so this runs in
create_app: their handlers go, their records reach the root's JSON handler instead, and so do
the Temporal client's Core lines. The same redaction as the worker's runs on it
(activities/secrets.py: workflow secrets and the OpenRouter key in any encoding, URL queries
and credentials). ``text`` changes nothing.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping
from typing import Any

from activities.runtime.log_format import configure_logging
from activities.runtime.settings import Settings
from activities.runtime.temporal_runtime import use_json_core_logs
from activities.secrets import SecretStore, install_log_redaction

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")

# The ASGI scope of the request being answered; the router adds `path_params` to it in place.
_SCOPE: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "wfe_request_scope", default=None
)


class RequestLogContext:
    """ASGI middleware: lines logged while a request is answered can name its execution."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = _SCOPE.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _SCOPE.reset(token)


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "execution_id", None) is None:
            scope = _SCOPE.get()
            params = scope.get("path_params") if scope is not None else None
            if isinstance(params, Mapping) and params.get("execution_id"):
                record.execution_id = str(params["execution_id"])
        return True


def api_secret_store(settings: Settings) -> SecretStore:
    """What the API's log lines and spans are scrubbed of: the workflow secrets this process
    can see and the OpenRouter key."""
    extra = [settings.openrouter_api_key.get_secret_value()] if settings.openrouter_api_key else []
    return SecretStore.from_environment(settings.secret_env_prefix, settings.secrets_file, extra)


def configure_api_logging(settings: Settings) -> bool:
    """Switch the process to JSON lines when LOG_FORMAT=json; True if it did."""
    if settings.log_format != "json":
        return False
    root = logging.getLogger()
    for name in UVICORN_LOGGERS:
        own = logging.getLogger(name)
        own.handlers.clear()
        own.propagate = True
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)  # as the worker: our INFO lines (starts, connects) too
    configure_logging("json")
    context = RequestContextFilter()
    for handler in root.handlers:
        if not any(isinstance(f, RequestContextFilter) for f in handler.filters):
            handler.addFilter(context)
    install_log_redaction(api_secret_store(settings), root)
    use_json_core_logs(settings)  # the Temporal client's own (Rust) lines, as JSON too
    return True
