"""What crosses Temporal for flow control: names, the claim a run carries, and the coordinator's
requests and state."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import Field

from workflows.messages import _Model

CONCURRENCY_COORDINATOR = "ConcurrencyCoordinator"
# Signals to a coordinator (a run asks for a place, hands it back) and from it (a place is yours).
PLACE_SIGNAL = "concurrency_request"
# The same request as an update (update-with-start): answers True when the place is given at
# once, so an uncontended run needs no grant signal.
PLACE_UPDATE = "concurrency_request_now"
RELEASE_SIGNAL = "concurrency_release"
GRANT_SIGNAL = "concurrency_grant"
PLACE_QUERY = "concurrency_place"
# The coordinator's state (holders, queue, places granted so far): for operators and tests.
STATE_QUERY = "concurrency_state"
# What a run waiting for a place says in `waiting_for`.
WAITING_CONCURRENCY = "concurrency"
# Local activities the flow-control workflows call (activities/flow_control.py).
REQUEST_PLACE = "request_concurrency_place"
CLOSED_EXECUTIONS = "closed_executions"


def coordinator_id(workflow_id: str, key: str) -> str:
    """The coordinator's workflow id: one per (workflow, key). The key is hashed: it comes
    from run inputs and may be long or hold characters an id should not."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"concurrency-{workflow_id}-{digest}"


class ConcurrencyClaim(_Model):
    """What a run of a definition with `concurrency` carries: its resolved key and limit."""

    key: str = Field(description="The key, resolved from the inputs when the run started.")
    limit: int = Field(ge=1, le=1000)
    coordinator_id: str


class PlaceRequest(_Model):
    """A run asks for a place (an update- or signal-with-start of the coordinator)."""

    execution_id: str
    limit: int = Field(ge=1, le=1000)
    started_at: datetime | None = Field(
        None,
        description="When the run started: the queue is in start order, whatever order "
        "the requests arrive in.",
    )


class PlaceRelease(_Model):
    """A run hands its place (or its turn in the queue) back."""

    execution_id: str


class CoordinatorState(_Model):
    """A coordinator's input: empty at first, its state when it continues as new."""

    workflow_id: str
    key: str
    limit: int = Field(ge=1, le=1000)
    holders: list[str] = Field(default_factory=list, description="Runs holding a place.")
    queue: list[str] = Field(default_factory=list, description="Runs waiting, in start order.")
    queue_started: list[datetime | None] = Field(
        default_factory=list, description="When each of them started."
    )
    granted: int = Field(0, description="Places granted since the coordinator first started.")


class RequestPlace(_Model):
    """The local activity's input: ask the coordinator of ``claim`` for a place."""

    claim: ConcurrencyClaim
    workflow_id: str
    execution_id: str
    started_at: datetime | None = None


class ClosedExecutions(_Model):
    """The local activity's input: which of these executions are no longer running."""

    execution_ids: list[str]


# Shared rate limits (AI_RATE_LIMITS, HTTP_HOST_CONCURRENCY): a limiter workflow per resource.
WINDOW_LIMITER = "WindowRateLimiter"
IN_FLIGHT_LIMITER = "InFlightLimiter"
RESERVE_UPDATE = "reserve"
SETTLE_SIGNAL = "settle"
ACQUIRE_UPDATE = "acquire"
RELEASE_PERMIT_SIGNAL = "release"
# What a run whose call waits its turn says in `waiting_for` (from the activity's heartbeat).
WAITING_RATE_LIMIT = "rate_limit"


def limiter_id(kind: str, resource: str) -> str:
    """A limiter's workflow id: one per limited resource (a model pattern, a host)."""
    digest = hashlib.sha256(resource.encode()).hexdigest()[:24]
    return f"ratelimit-{kind}-{digest}"


class WindowEntry(_Model):
    """A reserved request: when it may go, and the tokens it counts for."""

    at: datetime
    tokens: int = 0
    request_id: str


class WindowState(_Model):
    """A window limiter's input: empty at first, its entries when it continues as new."""

    resource: str
    entries: list[WindowEntry] = Field(default_factory=list)


class ReserveRequest(_Model):
    """Ask for a turn: one request of about ``tokens`` tokens under these limits."""

    request_id: str
    tokens: int = Field(0, ge=0)
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    window_seconds: float = Field(60.0, ge=1, description="What a provider's minute is.")


class Turn(_Model):
    """When the request may be sent (the caller waits until then)."""

    at: datetime


class SettleRequest(_Model):
    """After the call: the tokens the provider counted, in place of the estimate."""

    request_id: str
    tokens: int = Field(ge=0)


class InFlightState(_Model):
    """An in-flight limiter's input: the permits held (and until when) across continue-as-new."""

    resource: str
    holders: dict[str, datetime] = Field(default_factory=dict)


class AcquireRequest(_Model):
    """Ask for one of ``limit`` permits, held at most ``lease_seconds`` (a crashed caller's
    permit comes back then)."""

    request_id: str
    limit: int = Field(ge=1)
    lease_seconds: float = Field(gt=0)


# The local activity a run asks for an AI call's turn with (activities/rate_limits.py).
RESERVE_AI_TURN = "reserve_ai_turn"


class AITurnRequest(_Model):
    """A run asks for its AI call's turn: the model, and the tokens the call may count for."""

    model: str
    tokens: int = Field(ge=0)
    request_id: str


# Debounce: a workflow per (workflow id, key) collapses a burst of starts into one run.
DEBOUNCER = "Debouncer"
DEBOUNCE_UPDATE = "debounce"


def debouncer_id(workflow_id: str, key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return f"debounce-{workflow_id}-{digest}"


class DebouncedStart(_Model):
    """One start collapsed into the window's run: what Temporal would be given to start it.
    The run takes the last start's (``input`` is an ExecutionInput, kept as data here so this
    module need not know the definition format)."""

    execution_id_prefix: str
    input: dict[str, Any]
    seconds: float = Field(gt=0)
    task_queue: str
    definition_id: str
    definition_version: int | None = None
    started_by: str | None = None
    static_summary: str | None = None
    static_details: str | None = None
    execution_id: str | None = Field(None, description="Set by the debouncer: the run's id.")


class DebouncerState(_Model):
    """A debouncer's input: empty at first; the open window when it continues as new."""

    workflow_id: str
    key: str
    window: DebouncedStart | None = None
    last_at: datetime | None = None
