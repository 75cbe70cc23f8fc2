"""Resolving a definition's `concurrency` key (and `debounce` key) over a run's inputs."""

from __future__ import annotations

from typing import Any

from workflows.definition import WorkflowDefinition
from workflows.errors import TemplateError
from workflows.flow.messages import ConcurrencyClaim, coordinator_id
from workflows.templating import VariableSubstitutor, to_text

MAX_KEY_CHARS = 500


class KeyTemplateError(TemplateError):
    """A key template did not resolve over the run's inputs; names the template."""

    def __init__(self, field: str, template: str, reason: str) -> None:
        super().__init__(f"{field} {template!r} does not resolve over the inputs: {reason}")
        self.field = field
        self.template = template


def resolve_key(template: str | None, default: str, inputs: dict[str, Any], field: str) -> str:
    """The key for a run: the template rendered over its inputs (secrets are no inputs, so
    `{secrets.X}` does not resolve), or ``default`` when the definition sets none."""
    if template is None:
        return default
    try:
        value = VariableSubstitutor(inputs, deferred_roots=frozenset()).render(template)
    except TemplateError as err:
        raise KeyTemplateError(field, template, str(err)) from None
    text = to_text(value)
    if value is None or text == "":
        raise KeyTemplateError(field, template, "it renders empty")
    if len(text) > MAX_KEY_CHARS:
        raise KeyTemplateError(
            field, template, f"it renders {len(text)} characters (max {MAX_KEY_CHARS})"
        )
    return text


def concurrency_claim(
    definition: WorkflowDefinition, inputs: dict[str, Any]
) -> ConcurrencyClaim | None:
    """The claim a run of ``definition`` carries, or None when it sets no `concurrency`."""
    concurrency = definition.concurrency
    if concurrency is None:
        return None
    key = resolve_key(concurrency.key, definition.key, inputs, "concurrency.key")
    return ConcurrencyClaim(
        key=key, limit=concurrency.limit, coordinator_id=coordinator_id(definition.key, key)
    )
