"""The engine's one exception tree: everything it raises on purpose is an EngineError.

    EngineError
    ├── ConfigurationError        bad or missing settings; raised at start-up
    ├── DefinitionError           a workflow document that cannot be run (carries every problem)
    ├── TemplateError             a `{variable}` template that cannot be rendered
    │   └── InvalidReferenceError a reference to a value the context does not hold
    ├── ConditionError            a CEL expression that does not compile or evaluate to a bool
    ├── ValueLimitError           a value too deep, too large, not finite (workflows/values.py)
    ├── StepFailed                a step failed; carries the failure type shown to users
    ├── IOSideError               activities/errors.py: the SSRF guard, HTTP limits, storage
    ├── ServerError               api/server/errors.py: the HTTP API's
    │   ├── ApiError              an error answer (status, code, message, path)
    │   ├── DefinitionNotFound    no saved definition (or version) by that id
    │   └── DuplicateStart        an idempotency key's execution exists already
    └── ClientError               api/cli/client.py: what `wfe` reports, one line per problem

Each layer's errors live in its errors module (these three); a few modules keep a private
exception for their own flow control (a schema check out of budget, a CEL construct the
rewriter does not support), under EngineError too.

Errors that cross the activity boundary travel as Temporal ``ApplicationError`` with one of the
``FailureType`` names below, so the workflow and the API can classify them without parsing text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FailureType(StrEnum):
    """Why a step or a run failed: ``ApplicationError.type`` in Temporal, ``error.type`` /
    ``error_type`` in the API and the logs, and the names ``on_error`` rules route on
    (``{"errors": ["StepTimeout"], "then": ...}``). Public names: listed in docs/errors.md."""

    INVALID_REFERENCE = "InvalidVariableReference"
    INVALID_CONDITION = "InvalidCondition"
    MISSING_CONFIGURATION = "MissingConfiguration"
    PROVIDER_ERROR = "ProviderError"
    PROVIDER_RETRYABLE = "ProviderRetryableError"
    INVALID_MODEL_OUTPUT = "InvalidModelOutput"
    HTTP_STATUS = "HTTPStatusError"
    HTTP_RETRYABLE = "HTTPRetryableError"
    HTTP_TRANSPORT = "HTTPTransportError"
    SSRF_BLOCKED = "SSRFBlocked"
    SECRET_NOT_ALLOWED = "SecretNotAllowed"  # noqa: S105 - a failure type, not a secret
    INVALID_REQUEST = "InvalidRequest"
    STEP_TIMEOUT = "StepTimeout"
    SIGNAL_TIMEOUT = "SignalTimeout"
    CHILD_WORKFLOW_FAILED = "ChildWorkflowFailed"
    BUDGET_EXCEEDED = "BudgetExceeded"
    AGENT_MAX_TURNS = "AgentMaxTurns"
    MCP_TOOL_ERROR = "MCPToolError"  # the tool answered with isError (not retried)
    MCP_ERROR = "MCPError"  # the server broke the protocol: no such tool, a bad schema, ...
    WORKFLOW_TIMEOUT = "WorkflowTimeout"
    WORKFLOW_FAILED = "WorkflowFailed"
    CANCELLED = "ExecutionCancelled"
    TERMINATED = "Terminated"
    TIMED_OUT = "TimedOut"
    LOG_WRITE = "LogWriteError"
    STEP_LIMIT = "StepLimitExceeded"
    EXECUTION_LIMIT = "ExecutionLimitExceeded"
    VALUE_TOO_LARGE = "ValueTooLarge"
    ENGINE_ERROR = "EngineError"


FAILURE_TYPES = frozenset(member.value for member in FailureType)


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ConfigurationError(EngineError):
    """A setting is missing or invalid; the message names the environment variable."""


def json_path(location: Iterable[str | int], root: str = "$") -> str:
    """The one JSON-path formatter: ``("steps", 2, "url")`` -> ``$.steps[2].url``."""
    out = root
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, located by a JSON path such as ``$.steps[2].next``."""

    path: str
    message: str
    code: str = "invalid_definition"

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "path": self.path}


@dataclass
class DefinitionError(EngineError):
    """A workflow definition failed validation; ``problems`` lists every issue found."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{p.path}: {p.message}" for p in self.problems)


class TemplateError(EngineError):
    """A template could not be rendered."""


class InvalidReferenceError(TemplateError):
    """A `{path}` reference names a value the execution context does not hold."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"invalid variable reference {{{path}}}: {reason}")
        self.path = path
        self.reason = reason


class ConditionError(EngineError):
    """A CEL condition failed to compile or to evaluate."""


class ValueLimitError(EngineError):
    """A value breaks a value limit (depth, size, non-finite numbers, lone surrogates; see
    workflows/values.py); ``path`` locates it (``$.input_vars.a[2]``)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.reason = message


class StepFailed(EngineError):
    """A step failed: ``failure_type`` is a FailureType name (what users see and `on_error`
    rules route on). Raised by a kind for its own step; raised again, when the step's route
    says fail, out of the list it is in: a nested list's failure fails the step that holds it
    (with ``step_id`` naming the inner step), and the top list's ends the run. ``usage``: what
    AI calls of the failed step cost (its record shows it)."""

    def __init__(
        self,
        message: str,
        failure_type: str,
        usage: dict[str, Any] | None = None,
        step_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.failure_type = failure_type
        self.usage = usage
        self.step_id = step_id
