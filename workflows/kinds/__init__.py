"""The step kinds (one module each) and what the registry derives from them.

Every kind is listed once, below: importing its module registers it (``@register``). A new
kind is a new module here plus its line in that list. :data:`Step` is the discriminated union
of their models on ``type``, :data:`STEP_TYPES` their names (alphabetical).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

# The kinds, in the order they register (the union's and the exported schema's order).
from workflows.kinds import (  # noqa: F401 - each import registers its kind
    agent,
    ai,
    condition,
    delay,
    fail,
    foreach,
    http,
    mcp,
    parallel,
    set_values,
    sub_workflow,
    wait_for_signal,
)
from workflows.kinds.base import REGISTRY, StepKind, kind_of

STEP_TYPES: tuple[str, ...] = tuple(sorted(REGISTRY))
"""Every step type's name, alphabetical."""

if TYPE_CHECKING:
    from workflows.kinds.common import StepBase as Step
else:
    Step = Annotated[
        Union[tuple(kind.model for kind in REGISTRY.values())],  # noqa: UP007 - built at run time
        Field(discriminator="type"),
    ]


def rebuild_nested_models() -> None:
    """Kinds whose models hold lists of steps refer to :data:`Step` by name; resolve it."""
    for kind in REGISTRY.values():
        for model in kind.nested_models:
            model.model_rebuild(_types_namespace={"Step": Step})


rebuild_nested_models()


def unknown_type_message(found: Any) -> str:
    return f"unknown step type {found!r}; expected one of {', '.join(STEP_TYPES)}"


__all__ = ["REGISTRY", "STEP_TYPES", "Step", "StepKind", "kind_of", "unknown_type_message"]
