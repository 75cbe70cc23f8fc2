"""The step kinds (one module each) and what the registry derives from them.

Importing this package imports every module of it (but the building blocks in
:data:`NOT_KINDS`), and each registers its kind: a new kind is a new module here, nothing
else. :data:`Step` is the discriminated union of their models on ``type``,
:data:`STEP_TYPES` their names (alphabetical, as the modules are found).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from workflows.kinds.base import REGISTRY, StepKind, kind_of

NOT_KINDS = frozenset({"base", "common", "slots"})
for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _module.name not in NOT_KINDS:
        importlib.import_module(f"{__name__}.{_module.name}")

STEP_TYPES: tuple[str, ...] = tuple(sorted(REGISTRY))
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
