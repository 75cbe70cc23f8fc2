"""How many executions a run may still start: the cap on one start's tree of executions.

A `sub_workflow` step, an agent's workflow tool and a large `foreach` (its shares) each start
another execution, which may start more: a workflow that calls itself from a foreach of 20
items made 121 executions in four seconds, and fan-out to the power of the depth cap was within
reach. So a start gets an allowance (``EXECUTION_MAX_DESCENDANTS``, 1,000 by default) of
executions its whole tree may start, and every child is paid for from it:

- a child that starts nothing itself (no `sub_workflow`, agent workflow tool or `foreach` in
  its definition) costs one;
- a child that may start more is handed what its caller's scope has left, the share of a
  foreach iteration or a parallel branch included, and hands back what it did not use when it
  ends;
- the iterations of a `foreach` and the branches of a `parallel` split their scope's allowance
  evenly among those not yet started (what a finished one did not use goes back to be
  shared by the rest).

So the whole tree never exceeds the allowance, however it fans out, and a child that the
allowance cannot pay for fails with ``ExecutionLimitExceeded`` naming the limit. Runs started
before the cap have no allowance (``None``): nothing is counted for them.

Pure bookkeeping, deterministic (the same splits on every replay).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workflows.errors import FailureType, StepFailed

LIMIT_SETTING = "EXECUTION_MAX_DESCENDANTS"


@dataclass
class Allowance:
    """Executions a scope of a run may still start (``None``: not counted)."""

    left: int | None
    parent: Allowance | None = None

    def share(self, ways: int) -> Allowance:
        """A nested scope's part: an even share among ``ways`` scopes not yet started."""
        if self.left is None:
            return Allowance(None, self)
        part = self.left // max(ways, 1)
        self.left -= part
        return Allowance(part, self)

    def close(self) -> None:
        """A nested scope ended: what it did not use goes back to its parent."""
        if self.parent is not None and self.parent.left is not None and self.left is not None:
            self.parent.left += self.left
            self.left = 0

    def pay_for_child(self, starts_more: bool, limit: int | None, ways: int = 1) -> int | None:
        """Pay for one child execution; how many it may start itself (``None``: uncounted).

        A child that starts nothing costs one; one that may start more takes what is left
        here, or its even part among ``ways`` such children not yet started (a foreach's
        shares), and hands back what it did not use (:meth:`refund`)."""
        if self.left is None:
            return None
        part = 1 if not starts_more else self.left // max(ways, 1)
        if self.left < 1 or part < 1:
            raise StepFailed(
                "this run may start no more executions: its tree of sub-workflows and foreach "
                f"shares used its allowance ({LIMIT_SETTING}"
                + (f"={limit:,}" if limit is not None else "")
                + "); does a workflow call itself without an end? Call fewer, or raise the limit",
                FailureType.EXECUTION_LIMIT,
            )
        self.left -= part
        return part - 1  # the child itself is one of them

    def refund(self, unused: int | None) -> None:
        """A child that ended hands back what its tree did not use."""
        if self.left is not None and unused is not None and unused > 0:
            self.left += unused


class ScopeAllowances:
    """Each scope's part of a run's allowance, by the scope's variables (a mapping the
    interpreter makes per nested list); a step's scope is the one its variables are."""

    def __init__(self, tree: Allowance, top: Mapping[str, Any], limit: int | None) -> None:
        self.tree = tree
        self._limit = limit
        self._by_scope: dict[int, Allowance] = {id(top): tree}

    def of(self, variables: Mapping[str, Any]) -> Allowance:
        return self._by_scope.get(id(variables), self.tree)

    def open(self, scope: Mapping[str, Any], within: Mapping[str, Any], ways: int) -> Allowance:
        """A nested scope's part of the one it is in (``ways``: siblings not yet started)."""
        allowance = self.of(within).share(ways)
        self._by_scope[id(scope)] = allowance
        return allowance

    def close(self, scope: Mapping[str, Any]) -> None:
        self._by_scope.pop(id(scope)).close()

    def pay_for_child(
        self, variables: Mapping[str, Any], starts_more: bool, ways: int = 1
    ) -> int | None:
        """Pay for a child execution from the allowance of the scope that starts it."""
        return self.of(variables).pay_for_child(starts_more, self._limit, ways)

    def refund(self, variables: Mapping[str, Any], unused: int | None) -> None:
        self.of(variables).refund(unused)
