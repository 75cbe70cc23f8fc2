"""The interpreter: the generic Temporal workflow that runs a definition.

The definition travels in the workflow input, so every run is pinned to the document it
started with. :class:`~workflows.interpreter.executor.WorkflowExecutor` walks the steps, each
run by its kind (``workflows/kinds/``); control flow is a tree: a list of steps runs in a scope
and recurses, through the kinds that hold lists (`parallel`, `foreach`), into nested lists
with scopes of their own. A step's place is its path (``fan.b.fetch``, ``each[3].fetch``).
The other concerns of a run are parts of their own modules: ``run_log`` (the execution log's
records), ``spending`` and ``budget`` (AI spend), ``run_tree`` (child executions), ``jobs``
(concurrency), ``records`` (step records), ``ending`` (deadline, cancel, outcome) and
``patches`` (the version markers that keep runs in flight on the behaviour they started with).
A large foreach runs its shares as :class:`ForeachBatchWorkflow` children.
"""

from __future__ import annotations

from workflows.flow.coordinator import ConcurrencyCoordinator
from workflows.flow.debouncer import Debouncer
from workflows.flow.limiters import InFlightLimiter, WindowRateLimiter
from workflows.interpreter.executor import WorkflowExecutor
from workflows.interpreter.foreach_batch import ForeachBatchWorkflow

ENGINE_WORKFLOWS = (
    WorkflowExecutor,
    ForeachBatchWorkflow,
    ConcurrencyCoordinator,
    WindowRateLimiter,
    InFlightLimiter,
    Debouncer,
)
"""The workflow types a worker registers."""

__all__ = ["ENGINE_WORKFLOWS", "ForeachBatchWorkflow", "WorkflowExecutor"]
