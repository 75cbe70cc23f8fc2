"""RunBudget: what a run may spend on AI calls, what it has spent, and what is in flight.

A definition's ``budget`` (``max_cost_usd``, ``max_tokens``, ``on_exceeded``) is checked before
every AI call and after it. Calls run concurrently (parallel branches, foreach iterations), so a
check of what is *spent* alone lets every concurrent call start while nothing is spent yet:
twenty calls at once each pass a budget that one call exhausts. So each call in flight
*reserves* what a call of this run has cost at most so far, and a call starts only while what
is spent plus what is reserved is under every limit; until a call has reported a cost, one call
at a time. A run therefore ends at most about one call's worth over its budget, however many
calls it runs at once. Runs started before reservations existed keep the old check
(``reserving`` false).

Pure bookkeeping plus waits on workflow conditions: deterministic, replay-safe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

from workflows.errors import FailureType, StepFailed
from workflows.usage import Usage

LIMIT_FIELDS = ("max_cost_usd", "max_tokens")

# Waits for a `budget` signal (new limits or a refusal) for the step at this path.
AskForMore = Callable[[str], Awaitable[Any]]


@dataclass
class RunBudget:
    """The run's AI spend against its limits (see the module docstring)."""

    limits: dict[str, Any]
    on_exceeded: str = "fail"
    usage: Usage = field(default_factory=Usage)
    reserving: bool = False
    _in_flight: dict[str, tuple[float, int] | None] = field(default_factory=dict)
    _largest: tuple[float, int] | None = None  # the most one call has cost (USD, tokens)

    # -- reading ------------------------------------------------------------------------

    def over(self) -> str | None:
        """What is spent past which limit, or None while the run is within its budget."""
        cost_limit = self.limits.get("max_cost_usd")
        token_limit = self.limits.get("max_tokens")
        spent = self.usage
        if cost_limit is not None and spent.cost_usd >= cost_limit:
            return f"spent ${spent.cost_usd:.6g} of its budget of ${cost_limit:g} (max_cost_usd)"
        if token_limit is not None and spent.total_tokens >= token_limit:
            return (
                f"used {spent.total_tokens:,} tokens of its budget of {token_limit:,} (max_tokens)"
            )
        return None

    def _room(self) -> bool:
        """May another call start now, with what is spent and reserved?"""
        if not self.reserving or not self.limits:
            return True
        if any(reserved is None for reserved in self._in_flight.values()):
            return False  # a call of unknown cost is in flight: one at a time until it reports
        cost = self.usage.cost_usd + sum(r[0] for r in self._in_flight.values() if r)
        tokens = self.usage.total_tokens + sum(r[1] for r in self._in_flight.values() if r)
        cost_limit = self.limits.get("max_cost_usd")
        token_limit = self.limits.get("max_tokens")
        return (cost_limit is None or cost < cost_limit) and (
            token_limit is None or tokens < token_limit
        )

    # -- before and after a call --------------------------------------------------------

    async def gate(self, path: str, ask_for_more: AskForMore) -> None:
        """Before an AI call at ``path``: wait while calls in flight may use up what is left;
        over budget, fail (``fail``) or wait for a `budget` signal (``pause``); then reserve."""
        while True:
            if self.reserving and self._in_flight and not self._room():
                await workflow.wait_condition(lambda: not self._in_flight or self._room())
                continue
            spent = self.over()
            if spent is None:  # (with nothing in flight, under every limit means room)
                break
            if self.on_exceeded != "pause":
                raise StepFailed(f"the run {spent}", FailureType.BUDGET_EXCEEDED)
            answer = await ask_for_more(path)
            if not isinstance(answer, dict) or answer.get("approve") is False:
                raise StepFailed(
                    f"the run {spent}; the budget signal refused more", FailureType.BUDGET_EXCEEDED
                )
            for name in LIMIT_FIELDS:
                value = answer.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                    self.limits[name] = value
        if self.reserving:
            self._in_flight[path] = self._largest

    def account(self, usage: dict[str, Any] | None, calls: int = 1, path: str = "") -> None:
        """A call's usage (``None`` when it reported none); its reservation is released."""
        self._in_flight.pop(path, None)
        before = (self.usage.cost_usd, self.usage.total_tokens)
        self.usage.add(usage, calls)
        this = (self.usage.cost_usd - before[0], self.usage.total_tokens - before[1])
        if usage and calls:
            largest = self._largest or (0.0, 0)
            self._largest = (max(largest[0], this[0]), max(largest[1], this[1]))

    def release(self, path: str) -> None:
        """A call that never reached the provider (or whose outcome is unknown) gives back
        its reservation."""
        self._in_flight.pop(path, None)

    def check_after(self) -> None:
        """After an AI call: a `fail` budget fails the step that spent past it."""
        spent = self.over()
        if spent is not None and self.on_exceeded != "pause":
            raise StepFailed(f"the run {spent}", FailureType.BUDGET_EXCEEDED)
