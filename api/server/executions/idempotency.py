"""Which execution a start names, so that a repeated request lands on the run it started.

Without an Idempotency-Key every start is a new execution. With one, the same key from the
same caller for the same workflow always names the same execution (a key is scoped to its
caller and workflow): Temporal's USE_EXISTING (running) and REJECT_DUPLICATE (closed) make
concurrent and repeated requests land on it instead of starting another, and the request's
hash, kept in the execution's memo, tells a repeat from another body under the same key.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from api.server.errors import ApiError

REQUEST_HASH = "request_hash"  # the memo field


def request_hash(workflow_id: str, input_vars: Any) -> str:
    canonical = json.dumps(
        {"workflow_id": workflow_id, "input_vars": input_vars},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class StartId:
    """The execution id a start asks for, and how Temporal treats one that exists."""

    execution_id: str
    conflict: WorkflowIDConflictPolicy
    reuse: WorkflowIDReusePolicy


def start_id(
    workflow_id: str, caller: str, idempotency_key: str | None, refuse_duplicate: bool
) -> StartId:
    """Ids begin with the definition's id, so Temporal's UI and CLI tell runs apart. With
    ``refuse_duplicate`` (a webhook delivery), FAIL (running) and REJECT_DUPLICATE (closed):
    Temporal itself refuses a replay."""
    if idempotency_key is None:
        return StartId(
            f"{workflow_id}-{uuid.uuid4()}",
            WorkflowIDConflictPolicy.FAIL,
            WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
    key_digest = hashlib.sha256(f"{caller}\x1f{idempotency_key}".encode()).hexdigest()
    return StartId(
        f"{workflow_id}-idem-{key_digest[:32]}",
        WorkflowIDConflictPolicy.FAIL
        if refuse_duplicate
        else WorkflowIDConflictPolicy.USE_EXISTING,
        WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )


async def same_request_run(client: Client, execution_id: str, digest: str, key: str) -> str:
    """The run of the execution ``key`` named before, if it was started by the same request
    (409 otherwise)."""
    description = await client.get_workflow_handle(execution_id).describe()
    if await description.memo_value(REQUEST_HASH, default=None) != digest:
        raise ApiError(
            409,
            "idempotency_conflict",
            f"Idempotency-Key '{key}' was already used with a different request body",
        )
    return description.run_id
