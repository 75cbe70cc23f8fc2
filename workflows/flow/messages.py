"""What crosses Temporal for flow control: names, the claim a run carries, and the coordinator's
requests and state."""

from __future__ import annotations

import hashlib

from pydantic import Field

from workflows.messages import _Model

CONCURRENCY_COORDINATOR = "ConcurrencyCoordinator"
# Signals to a coordinator (a run asks for a place, hands it back) and from it (a place is yours).
PLACE_SIGNAL = "concurrency_request"
RELEASE_SIGNAL = "concurrency_release"
GRANT_SIGNAL = "concurrency_grant"
PLACE_QUERY = "concurrency_place"
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
    """A run asks for a place (a signal-with-start of the coordinator)."""

    execution_id: str
    limit: int = Field(ge=1, le=1000)


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
    granted: int = Field(0, description="Places granted since the coordinator first started.")


class RequestPlace(_Model):
    """The local activity's input: signal-with-start the coordinator of ``claim``."""

    claim: ConcurrencyClaim
    workflow_id: str
    execution_id: str


class ClosedExecutions(_Model):
    """The local activity's input: which of these executions are no longer running."""

    execution_ids: list[str]
