"""The step kinds (one module each) and what the registry derives from them.

Importing this package registers every kind, in the order below (the order of the type list
in error messages and docs); :data:`Step` is the discriminated union of their models on
``type``, :data:`STEP_TYPES` their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

# Each import registers a kind; the order is the type list's.
from workflows.kinds import ai, condition, delay, fail, http, set_values, wait_for_signal  # noqa: F401  # noqa: F401, I001
from workflows.kinds.base import REGISTRY, StepKind, kind_of

STEP_TYPES: tuple[str, ...] = tuple(REGISTRY)
"""Every step type's name, in registration order."""

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
