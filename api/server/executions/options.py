"""What Temporal is given to start one execution of a stored definition: the same for API
starts, webhooks and schedules (api/server/triggers.py), so every run looks alike in the UI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from activities.runtime.settings import Settings
from api.server.store import StoredDefinition
from workflows.definition import RunLimits, WorkflowDefinition
from workflows.flow.keys import concurrency_claim
from workflows.messages import (
    SA_DEFINITION_ID,
    SA_DEFINITION_VERSION,
    SA_STARTED_BY,
    ExecutionLimits,
)
from workflows.shared import ExecutionInput, LibraryEntry


@dataclass(frozen=True)
class StartOptions:
    """Everything Temporal needs to start one execution of a stored definition."""

    input: ExecutionInput
    search_attributes: TypedSearchAttributes
    static_summary: str
    static_details: str


def execution_limits(definition: WorkflowDefinition, settings: Settings) -> ExecutionLimits:
    """The operator's limits, lowered by what the definition asks for (README "Limits")."""
    own = definition.limits or RunLimits()
    return ExecutionLimits(
        max_steps=min(own.max_steps or settings.execution_max_steps, settings.execution_max_steps),
        timeout_seconds=min(
            definition.timeout_seconds or settings.execution_timeout_seconds,
            settings.execution_timeout_seconds,
        ),
        max_value_bytes=min(
            own.max_value_bytes or settings.max_value_bytes, settings.max_value_bytes
        ),
        max_buffered_signals=settings.signal_buffer_max,
        foreach_max_items=settings.foreach_max_items,
        max_descendants=settings.execution_max_descendants,
    )


def start_options(
    stored: StoredDefinition,
    input_vars: dict[str, Any],
    started_by: str | None,
    max_steps_per_run: int | None = None,
    limits: ExecutionLimits | None = None,
    library: dict[str, LibraryEntry] | None = None,
    api_url: str | None = None,
) -> StartOptions:
    """Shared by API starts, webhooks and schedules, so every run looks the same in the UI.
    ``api_url``: this API's base URL, which the run reads as ``{execution.api_url}``.
    Raises KeyTemplateError when the definition's `concurrency.key` does not resolve over
    ``input_vars`` (a 422 at start, naming it)."""
    definition = stored.definition
    claim = concurrency_claim(definition, input_vars)
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(SA_DEFINITION_ID, definition.key),
        SearchAttributePair(SA_DEFINITION_VERSION, stored.version),
    ]
    if started_by:
        pairs.append(SearchAttributePair(SA_STARTED_BY, started_by))
    return StartOptions(
        input=ExecutionInput(
            definition=definition,
            input_vars=input_vars,
            definition_version=stored.version,
            definition_hash=stored.hash,
            started_by=started_by,
            max_steps_per_run=max_steps_per_run,
            limits=limits,
            library=library or {},
            api_url=api_url,
            concurrency=claim,
        ),
        search_attributes=TypedSearchAttributes(pairs),
        static_summary=f"{definition.title} · v{stored.version}",
        static_details=(
            f"**Workflow** `{definition.key}` version {stored.version} ({stored.hash[:19]})"
            + (f"\n\nStarted by `{started_by}`" if started_by else "")
        ),
    )
