"""What AI calls cost: per step (summed over its attempts and repairs) and per run.

Pure bookkeeping over OpenRouter's usage accounting (tokens, and ``cost`` in USD when it says);
the run's totals are in the status answer, at the top of its log, and in the search attributes
``WorkflowCostUsd`` / ``WorkflowTokens``, so the Temporal UI can filter costly runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    ai_calls: int = 0

    def add(self, usage: dict[str, Any] | None, calls: int = 1) -> None:
        """Add one call's usage (OpenRouter's keys; ``cost`` or ``cost_usd`` in USD)."""
        self.ai_calls += calls
        if not usage:
            return
        for name in TOKEN_FIELDS:
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(self, name, getattr(self, name) + value)
        cost = usage.get("cost_usd", usage.get("cost"))
        if isinstance(cost, int | float) and not isinstance(cost, bool):
            self.cost_usd = round(self.cost_usd + float(cost), 10)

    def merge(self, other: Usage) -> None:
        self.add(other.for_step(), calls=other.ai_calls)

    def for_step(self) -> dict[str, Any]:
        """A step record's `usage`."""
        return {name: getattr(self, name) for name in (*TOKEN_FIELDS, "cost_usd")}

    def for_run(self) -> dict[str, Any]:
        """The run's totals (status answer and log)."""
        return asdict(self)

    @classmethod
    def of(cls, data: dict[str, Any] | None) -> Usage:
        usage = cls()
        if data:
            usage.add(data, calls=int(data.get("ai_calls") or 0))
        return usage
