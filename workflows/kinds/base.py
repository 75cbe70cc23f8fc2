"""What a step kind is, and the registry that collects them.

A step kind is one module (``workflows/kinds/<type>.py``) holding, in one place:

- its pydantic model (the ``type`` literal and its fields),
- what it reads and binds (``templated``, ``expressions``, ``binds``: the reference checks),
- where it can lead (``successors``, ``jumps``: the graph checks), and the nested lists of
  steps it holds (``scopes``: each a scope of its own),
- whether it waits on the outside world (``waits``), and whether its activity carries the log
  records (``carries_log``),
- its own checks (``problems``) and its workflow-side execution (``execute``).

:func:`register` adds a kind to :data:`REGISTRY`; :mod:`workflows.kinds` derives the
discriminated union of step models, the list of type names and the "unknown step type"
message from it. Adding a leaf kind is one module plus its tests and a row in the README.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel

from workflows.errors import Problem
from workflows.kinds.common import (
    END,
    LAST_ERROR,
    ActivityMixin,
    FlowMixin,
    OnErrorNext,
    OnErrorRoute,
    StepBase,
)
from workflows.messages import ExecutionLimits, LogWrite, ReusedResult, StepRecord, StepRequest
from workflows.value_types import DYN, Type, Typer

S = TypeVar("S", bound=StepBase)
R = TypeVar("R")


@dataclass
class StepOutcome:
    """What a finished step binds and where the flow goes (None: the following step)."""

    output_vars: dict[str, Any] = field(default_factory=dict)
    next_target: str | None = None
    usage: dict[str, Any] | None = None
    logged: bool = False  # the step's activity wrote the log records it carried (set by the run)
    reused_from: str | None = None  # a rerun took the result from this execution
    reuse_key: str | None = None  # the rendered request's key (workflows.messages.request_key)


@dataclass(frozen=True)
class Reuse:
    """A result a rerun takes instead of calling out: what its source recorded for the same
    rendered request, and that request's key (workflows.messages.request_key)."""

    result: Any
    source: str
    key: str


@dataclass(frozen=True)
class Waiting:
    """A wait on the outside world: the signal's name, and when the wait times out."""

    signal: str
    until: datetime | None = None
    payload_schema: dict[str, Any] | None = None  # what the awaited payload must satisfy


@dataclass(frozen=True)
class Scope:
    """A nested list of steps that a step holds: it sees every variable around it;
    what its steps bind stays inside and comes out only through the holding step's output."""

    path: str  # JSON path of the list relative to the holding step, e.g. ".branches[1].steps"
    steps: Sequence[Any]
    adds: frozenset[str] = frozenset()  # names the scope binds for its steps (foreach: item)


@dataclass(frozen=True)
class Edge:
    """Where a step can lead: a step id of its own list, ``None`` for the following step, or
    ``"end"``; ``on_failure`` edges bind ``last_error`` on the way."""

    target: str | None
    on_failure: bool = False


class DefinitionOfRun(Protocol):
    """What a kind reads of the definition a run interprets."""

    @property
    def key(self) -> str:
        """Its id as text: the workflow a request is sent for (secrets may be bound to it)."""


class RunInput(Protocol):
    """What a kind reads of the run's input (workflows.shared.ExecutionInput, which holds the
    definition and so sits above the kinds): the sub-workflow library, the nesting depth."""

    @property
    def definition(self) -> DefinitionOfRun: ...

    @property
    def library(self) -> Mapping[str, Any]: ...

    @property
    def depth(self) -> int: ...

    @property
    def reuse(self) -> Mapping[str, ReusedResult]: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Any: ...


class StepRun(Protocol):
    """What the interpreter gives a kind's ``execute``: the step's place in the run, its
    variables, and the services a step needs (signals, activity options, nested scopes)."""

    @property
    def path(self) -> str:
        """E.g. "fan.b.fetch" or "each[3].fetch"; a top-level step's id."""

    @property
    def seq(self) -> int:
        """This visit's number in the execution (stable under replay)."""

    @property
    def variables(self) -> Mapping[str, Any]: ...

    @property
    def execution_id(self) -> str: ...

    async def call_activity(
        self, activity: str, request: StepRequest, result_type: type[R], options: dict[str, Any]
    ) -> R:
        """Run one of the step's activities. The run's log records not yet written ride with
        the step's first call (its activity writes them alongside), so no kind handles the log;
        a call that fails hands them on to the next one."""

    @property
    def input(self) -> RunInput: ...

    @property
    def limits(self) -> ExecutionLimits | None: ...

    @property
    def strict_indexes(self) -> bool:
        """How this run reads ``{items.01}`` (workflows/templating.py ``tokenize``): pass it to
        every VariableSubstitutor, so a run keeps the reading it started with."""

    @property
    def cel_conformant(self) -> bool:
        """Which CEL evaluator the run uses, decided once per run (workflows/conditions.py)."""

    def checked(self, value: Any, where: str, amplified: bool = True) -> Any: ...

    def activity_options(self, step: ActivityMixin) -> dict[str, Any]: ...

    def signal_queue(self, name: str) -> Any: ...

    def expect_wait(self, longest: timedelta | None) -> None:
        """The step is about to wait up to ``longest`` (None: no bound) for something other
        than an activity (workflows/deadline.py: the run's deadline timer may have to start)."""
        ...

    def account(self, usage: dict[str, Any] | None, calls: int = 1) -> None:
        """Add an AI call's usage to the run's totals (reused results are not counted)."""

    async def budget_gate(self) -> None:
        """Before an AI call: raises BudgetExceeded (or waits for a `budget` signal) when the
        run's budget is spent."""

    def check_budget_after(self) -> None:
        """After an AI call: raises BudgetExceeded when it spent past a `fail` budget."""

    def release_budget(self) -> None:
        """An AI call that reported no usage (cancelled before the provider answered) gives
        back what it reserved of the budget."""

    def reused(self, kind: str, request: BaseModel | dict[str, Any]) -> Reuse | None:
        """The result a rerun's source recorded for this rendered request of ``kind`` (an
        activity name, or "sub_workflow"), if any. Only a rerun has results to reuse: a first
        run never computes the request's key (a hash of the whole rendered request)."""

    def adopt(self, records: Sequence[StepRecord], steps_done: int, written: bool = False) -> None:
        """Take the step records a child workflow ran for this step (a foreach share);
        ``written``: it wrote them to the log itself (they join the status only)."""

    def share_log(self, visits: int) -> tuple[LogWrite, int]:
        """For foreach shares that write their records to this run's log: what their writes
        carry, and the first of ``visits`` step numbers set aside for them."""

    def set_waiting(self, waiting: Waiting | None, quiet: bool = False) -> None: ...

    async def sleep(self, duration: timedelta, summary: str) -> None:
        """A durable timer (virtual time in a test run)."""

    async def wait_for_signal(
        self, arrived: Callable[[], bool], timeout: timedelta | None, signal: str
    ) -> None:
        """Wait until ``arrived``; raises TimeoutError after ``timeout`` (virtual time in a
        test run, where a wait nothing will end fails the step)."""

    def mocked_child(self, path: str) -> dict[str, Any] | None:
        """A test run's mock of the child run at ``path`` (its outputs), else None."""

    @property
    def testing(self) -> bool:
        """Whether this is a test run (docs/testing.md)."""

    def real_wait(self) -> AbstractContextManager[None]:
        """Around a wait on real work (a child run): a test run's virtual clock holds."""

    async def run_scope(
        self, steps: Sequence[Any], adds: dict[str, Any], path: str, ways: int = 1
    ) -> dict[str, Any]: ...

    def pay_for_child(self, starts_more: bool, ways: int = 1) -> int | None:
        """Pay for one child execution from the run's allowance (workflows/run_tree.py); how
        many it may start itself (``ways``: such children not yet started, sharing what is
        left). Raises ExecutionLimitExceeded when none is left."""

    def refund(self, unused: int | None) -> None:
        """A child that ended hands back what its tree did not use."""

    def started_child(self, execution_id: str) -> None:
        """The step started a child execution: its record names it from now on."""

    async def run_concurrently(
        self,
        jobs: Sequence[Callable[[], Coroutine[Any, Any, Any]]],
        limit: int,
        fail_fast: bool,
    ) -> list[Any]: ...


class StepKind(Generic[S]):
    """One step type: its model, its checks and its execution (see the module docstring)."""

    type: ClassVar[str]
    model: ClassVar[builtins.type[Any]]
    waits: ClassVar[bool] = False  # waits on the outside world: the log is brought up to date
    carries_log: ClassVar[bool] = False  # its activity writes the records not yet written
    secrets: ClassVar[bool] = False  # may use {secrets.NAME} (resolved inside its activity)
    routes_errors: ClassVar[bool] = True  # on_error applies to its failures
    spends: ClassVar[bool] = False  # makes AI calls (budgets apply, usage is counted)
    # Models that hold lists of steps refer to `Step` by name; the registry resolves them
    # once every kind is known (the step's model last: it holds the others).
    nested_models: ClassVar[tuple[Any, ...]] = ()

    # -- what it reads and binds --------------------------------------------------------------

    def templated(self, step: S) -> dict[str, Any]:
        """Fields rendered with `{variable}` substitution, by name."""
        return {}

    def expressions(self, step: S) -> list[tuple[str, str]]:
        """CEL expressions it evaluates: (path relative to the step, expression)."""
        return []

    def binds(self, step: S) -> set[str]:
        """Names it binds in its scope when it succeeds."""
        output = getattr(step, "output", None)
        return {output} if output else set()

    def result_types(self, step: S, typer: Typer) -> dict[str, Type]:
        """The type of each name it binds (save-time type checks; default: unknown)."""
        return {name: DYN for name in self.binds(step)}

    def scope_types(self, step: S, typer: Typer) -> list[dict[str, Type]]:
        """The types of the names each of its scopes adds (default: unknown)."""
        return [{name: DYN for name in scope.adds} for scope in self.scopes(step)]

    # -- where it leads -----------------------------------------------------------------------

    def successors(self, step: S) -> list[Edge]:
        """Every way out of the step; the default: ``next`` (or the following step), plus the
        targets of ``on_error``."""
        edges = [Edge(getattr(step, "next", None))]
        return edges + self.failure_edges(step)

    def failure_edges(self, step: S) -> list[Edge]:
        if not isinstance(step, FlowMixin):
            return []
        policy = step.on_error
        if isinstance(policy, OnErrorNext):
            return [Edge(policy.next, on_failure=True)]
        if policy == "continue":
            return [Edge(None, on_failure=True)]
        if isinstance(policy, list):
            return [
                Edge(None if rule.then == "continue" else rule.then, on_failure=True)
                for rule in policy
                if rule.then != "fail"
            ]
        return []

    def jumps(self, step: S) -> list[tuple[str, str]]:
        """(path relative to the step, step id) for every step id it names as a target."""
        found: list[tuple[str, str]] = []
        next_target = getattr(step, "next", None)
        if next_target is not None:
            found.append((".next", next_target))
        if isinstance(step, FlowMixin):
            policy = step.on_error
            if isinstance(policy, OnErrorNext):
                found.append((".on_error.next", policy.next))
            elif isinstance(policy, list):
                found += [
                    (f".on_error[{i}].then", rule.then)
                    for i, rule in enumerate(policy)
                    if rule.then not in ("continue", "fail")
                ]
        return found

    def scopes(self, step: S) -> list[Scope]:
        """The nested lists of steps it holds."""
        return []

    def starts_executions(self, step: S) -> bool:
        """Whether it may start executions of its own (child workflows, foreach shares)."""
        return False

    def calls(self, step: S) -> list[tuple[str, int | None]]:
        """The saved workflows it may run as children: (workflow id, pinned version or None),
        so the API loads them into the run's library when it starts."""
        return []

    # -- its own checks and its execution ---------------------------------------------------

    def problems(self, step: S, where: str) -> list[Problem]:
        """Checks of this kind only (the shape is valid; ``where`` is the step's JSON path)."""
        return []

    async def execute(self, step: S, run: StepRun) -> StepOutcome:
        raise NotImplementedError(f"step type {self.type!r} runs no workflow code")


REGISTRY: dict[str, StepKind[Any]] = {}


def register(kind: builtins.type[StepKind[Any]]) -> builtins.type[StepKind[Any]]:
    """Class decorator: add a kind to the registry (in import order, which the docs follow)."""
    if kind.type in REGISTRY:
        raise ValueError(f"step type {kind.type!r} is registered twice")
    REGISTRY[kind.type] = kind()
    return kind


def kind_of(step: StepBase) -> StepKind[Any]:
    return REGISTRY[step.type]


def called_workflows(steps: Sequence[Any]) -> list[tuple[str, int | None]]:
    """(workflow id, pinned version or None) of every workflow a list of steps may run as a
    child, nested lists included."""
    found: list[tuple[str, int | None]] = []
    work = list(steps)
    while work:
        step = work.pop()
        kind = kind_of(step)
        found += kind.calls(step)
        for scope in kind.scopes(step):
            work.extend(scope.steps)
    return found


def starts_executions(steps: Sequence[Any]) -> bool:
    """Whether a list of steps, nested lists included, may start executions of its own."""
    work = list(steps)
    while work:
        step = work.pop()
        kind = kind_of(step)
        if kind.starts_executions(step):
            return True
        for scope in kind.scopes(step):
            work.extend(scope.steps)
    return False


def route_failure(step: StepBase, failure_type: str) -> str | None:
    """What ``on_error`` says for a failure of ``failure_type``: ``"fail"``, ``"continue"``,
    or a step id (None: the kind's failures always fail, e.g. a `fail` step)."""
    if not kind_of(step).routes_errors or not isinstance(step, FlowMixin):
        return None
    policy = step.on_error
    if isinstance(policy, OnErrorNext):
        return policy.next
    if isinstance(policy, list):
        rule = next((r for r in policy if _matches(r, failure_type)), None)
        return rule.then if rule is not None else "fail"
    return policy


def _matches(rule: OnErrorRoute, failure_type: str) -> bool:
    return rule.errors is None or failure_type in rule.errors


__all__ = [
    "END",
    "LAST_ERROR",
    "REGISTRY",
    "Edge",
    "Scope",
    "StepKind",
    "StepOutcome",
    "StepRun",
    "Waiting",
    "kind_of",
    "register",
    "route_failure",
]
