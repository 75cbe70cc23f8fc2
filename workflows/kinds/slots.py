"""Deferred `{secrets.NAME}` slots as they travel to an activity (filled there, never here)."""

from __future__ import annotations

from workflows.messages import DeferredSlotModel
from workflows.templating import DeferredSlot


def slot_models(slots: list[DeferredSlot]) -> list[DeferredSlotModel]:
    return [DeferredSlotModel(location=s.location, parts=s.parts) for s in slots]
