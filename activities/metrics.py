"""AI usage metrics, recorded from the `call_llm` activity through Temporal's metric meter.

They land on the worker's Prometheus endpoint (WORKER_METRICS_ADDRESS) with Temporal's own
metrics; with no metrics configured the meter is a no-op. Every provider answer counts, the
successful ones and those whose text then fails its schema check (and is retried): the tokens
were spent either way. The meter adds ``namespace``, ``task_queue`` and ``activity_type``.

- ``wfe_ai_tokens_total{model,kind}``: tokens, ``kind`` ``prompt`` or ``completion``.
- ``wfe_ai_cost_usd_total{model}``: USD the provider reported (OpenRouter's ``usage.cost``;
  answers without one add nothing). Temporal's meter counts integers only, so this is a float
  gauge holding the process's running total: it only rises and restarts at zero with the
  worker, like a counter; read it with ``increase()`` / ``rate()``.

``model`` is bounded: a model may come from a run's inputs (``"model": "{model}"``), so any
caller could otherwise add series without end. Each worker process keeps the first
WORKER_METRICS_MAX_MODELS (50) distinct names it sees as their own label values and counts
every later one as ``model="other"`` (as it does a name over 100 characters).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

from temporalio import activity

AI_TOKENS_TOTAL = "wfe_ai_tokens_total"
AI_COST_USD_TOTAL = "wfe_ai_cost_usd_total"
TOKEN_KINDS = {"prompt": "prompt_tokens", "completion": "completion_tokens"}

OTHER_MODEL = "other"
DEFAULT_MAX_MODELS = 50
MAX_MODEL_CHARS = 100

# Running USD totals of this process, one per label set the gauge is set with.
_cost_totals: dict[tuple[str, ...], float] = {}
_cost_lock = threading.Lock()


class ModelLabels:
    """The ``model`` label values of this process: the first ``limit`` distinct names, then
    ``other`` (activities run in threads as well as on the event loop: hence the lock)."""

    def __init__(self, limit: int = DEFAULT_MAX_MODELS) -> None:
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def label(self, model: str) -> str:
        if len(model) > MAX_MODEL_CHARS:
            return OTHER_MODEL
        with self._lock:
            if model in self._seen:
                return model
            if len(self._seen) >= self._limit:
                return OTHER_MODEL
            self._seen.add(model)
            return model


_default_labels = ModelLabels()


def record_ai_usage(
    answer: Mapping[str, Any], requested_model: str, labels: ModelLabels | None = None
) -> None:
    """Count the tokens and cost of one provider answer (``answer["usage"]``), under the model
    the provider says answered (else the requested one). Call it inside the activity."""
    usage = answer.get("usage")
    if not isinstance(usage, Mapping):
        return
    model = answer.get("model")
    if not isinstance(model, str) or not model:
        model = requested_model
    model = (labels or _default_labels).label(model)
    meter = activity.metric_meter()
    tokens = meter.create_counter(AI_TOKENS_TOTAL, "AI tokens used, by model and kind")
    for kind, field in TOKEN_KINDS.items():
        count = usage.get(field)
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            tokens.add(count, {"model": model, "kind": kind})
    cost = usage.get("cost")
    if not isinstance(cost, int | float) or isinstance(cost, bool) or not math.isfinite(cost):
        return  # absent (not every provider reports it) or not a number
    if cost > 0:
        info = activity.info()
        key = (info.namespace, info.task_queue, info.activity_type, model)
        gauge = meter.create_gauge_float(
            AI_COST_USD_TOTAL, "AI cost in USD reported by the provider (running total)"
        )
        with _cost_lock:  # sum and set together: two answers never set an older total last
            total = _cost_totals[key] = _cost_totals.get(key, 0.0) + float(cost)
            gauge.set(total, {"model": model})
