"""`foreach`: the same steps for every item of a list, up to ``concurrency`` at once.

Each iteration is a scope of its own that sees the item as ``as`` (default ``item``) and its
position as ``index_as`` (default ``index``); the step's result is a list in item order, each
element the variables that iteration bound, or under ``on_item_error: "continue"``
``{"error": {"type", "message", "step_id"}}`` for an item that failed. Under ``"fail"`` (the
default) the first failure cancels the iterations still running and fails the step with it.

Large lists run in shares, each a child workflow of its own (like Step Functions' distributed
map), so no history grows past ~10,000 events: a share holds as many items as fit in
:data:`SHARE_EVENTS_WRITING` history events at :data:`EVENTS_PER_STEP` a step. ``FOREACH_MAX_ITEMS``
(default 10,000) caps the list.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError
from temporalio.workflow import ChildWorkflowCancellationType

from workflows import versions
from workflows.errors import FailureType, StepFailed
from workflows.kinds.base import (
    REGISTRY,
    Scope,
    StepKind,
    StepOutcome,
    StepRun,
    kind_of,
    register,
    starts_executions,
)
from workflows.kinds.common import FlowMixin, OutputMixin, StepBase, VariableName
from workflows.kinds.foreach_shares import (
    Share,
    SharePlan,
    balanced,
    brim_full,
    filling,
    in_waves,
)
from workflows.messages import (
    FOREACH_BATCH_TYPE,
    STATUS_STEP_WINDOW,
    ForeachBatchInput,
    ForeachBatchResult,
)
from workflows.templating import VariableSubstitutor
from workflows.value_types import (
    DYN,
    INT_T,
    LIST,
    NEVER,
    STRING_T,
    Type,
    Typer,
    bound_object,
    join,
    list_of,
    nullable,
    object_of,
)

if TYPE_CHECKING:
    from workflows.kinds.common import StepBase as Step  # the registry resolves the union

SHARE_EVENTS = 5_000  # history events one share (or an inline foreach) may add
# Since shares write their own logs (SHARES_WRITE_LOGS), each of a share's activities carries
# the previous step's record: ~1.4 KB of history an http step, so 3,000 events keep a share's
# history near 700 KB (5,000 made 1.2 MB).
SHARE_EVENTS_WRITING = 3_000
EVENTS_PER_STEP = 6  # what a sequential activity step costs (about 6 in a history)
MAX_SHARES = 1_000  # the parent's own history: ~8 events a share
# Shares of equal size all run at once, the step's concurrency split among them (older runs
# filled shares to the brim and ran concurrency // size of them at a time: often one).
PATCH_BALANCED_SHARES = "balanced-foreach-shares"
# Shares write their step records to the execution log themselves, numbered in a range the
# parent sets aside, and hand back their results and their latest records for the status (a
# share of the parent's status window); older shares handed back every record for the parent
# to write, and the parent's history held them all.
SHARES_WRITE_LOGS = "foreach-shares-write-logs"
# Every unit of the step's concurrency is used by its shares (foreach_shares.filling); balanced
# shares split it evenly and left the remainder unused (50 over 20 shares ran 40 at once).
# Asked only where the two ways differ; newer than the settling markers, so every run asks it.
SHARES_FILL_CONCURRENCY = "foreach-shares-fill-concurrency"
# Shares run a few at a time, each with a larger part of the concurrency (at least
# foreach_shares.SHARE_CONCURRENCY where the step's allows), so each share's workflow takes
# fewer tasks an item (foreach_shares.in_waves); before, every share ran at once with a part of
# 1 or 2. Asked only where the two ways differ; every run asks it.
SHARES_IN_WAVES = "foreach-shares-in-waves"


class ForeachStep(StepBase, FlowMixin, OutputMixin):
    """Runs its steps for every item of a list; binds the iterations' variables, in order."""

    # How the console's graph words the step (docs/console.md).
    model_config = ConfigDict(
        json_schema_extra={"x-label": ["each {as|item} in {items}", "{concurrency} at once"]}
    )

    type: Literal["foreach"]
    items: str | list[Any] = Field(
        description='A template that resolves to a list ("{orders}"), or a literal list.'
    )
    as_: VariableName = Field("item", alias="as", description="The item's name in the steps.")
    index_as: VariableName = Field("index", description="The item's position (from 0).")
    concurrency: int = Field(10, ge=1, le=1000, description="Iterations running at once.")
    on_item_error: Literal["fail", "continue"] = Field(
        "fail",
        description='"fail": the first failure cancels the rest and fails the step; '
        '"continue": a failed item\'s element is {"error": {...}}.',
    )
    steps: list[Step] = Field(
        min_length=1, json_schema_extra={"x-role": "steps", "x-label": "for each {as|item}"}
    )


def body_size(steps: Sequence[StepBase]) -> int:
    """Steps in a list, nested lists included (each iteration runs them at most once,
    loops aside): the history an iteration adds is about this many steps' worth."""
    total = 0
    work = list(steps)
    while work:
        step = work.pop()
        total += 1
        for scope in kind_of(step).scopes(step):
            work.extend(scope.steps)
    return total


def share_size(step: ForeachStep, events: int = SHARE_EVENTS) -> int:
    return max(1, events // (EVENTS_PER_STEP * body_size(step.steps)))


_ERROR_TYPE = object_of({"type": STRING_T, "message": STRING_T, "step_id": nullable(STRING_T)})


@register
class ForeachKind(StepKind[ForeachStep]):
    type = "foreach"
    model = ForeachStep
    nested_models = (ForeachStep,)

    def templated(self, step: ForeachStep) -> dict[str, Any]:
        return {"items": step.items}

    def scopes(self, step: ForeachStep) -> list[Scope]:
        return [Scope(".steps", step.steps, frozenset({step.as_, step.index_as}))]

    def scope_types(self, step: ForeachStep, typer: Typer) -> list[dict[str, Type]]:
        items = typer.value(step.items)
        item = items.element() if LIST in items.kinds else DYN
        return [{step.as_: item, step.index_as: INT_T}]

    def result_types(self, step: ForeachStep, typer: Typer) -> dict[str, Type]:
        """A list of what each iteration bound (``_element``), or its error."""
        if not step.output:
            return {}
        fields = {
            name: value
            for name, value in typer.scope_binds(step, 0).items()
            if name not in (step.as_, step.index_as)
        }
        if step.on_item_error == "continue":
            fields["error"] = join(fields.get("error", NEVER), _ERROR_TYPE)
        return {step.output: list_of(bound_object(fields))}

    def starts_executions(self, step: ForeachStep) -> bool:
        return True  # its shares, when the list is long

    async def execute(self, step: ForeachStep, run: StepRun) -> StepOutcome:
        items = VariableSubstitutor(run.variables, strict_indexes=run.strict_indexes).render(
            step.items
        )
        if not isinstance(items, list):
            raise StepFailed(
                f"foreach items must be a list, got {type(items).__name__}",
                FailureType.INVALID_REQUEST,
            )
        limit = run.limits.foreach_max_items if run.limits is not None else None
        if limit is not None and len(items) > limit:
            raise StepFailed(
                f"foreach over {len(items):,} items; the limit is {limit:,} "
                "(FOREACH_MAX_ITEMS): split the list or raise the limit",
                FailureType.INVALID_REQUEST,
            )
        events = SHARE_EVENTS_WRITING if versions.patched(SHARES_WRITE_LOGS) else SHARE_EVENTS
        size = max(share_size(step, events), math.ceil(len(items) / MAX_SHARES))
        if len(items) <= size:
            results = await self.iterate(step, items, 0, run)
        else:
            results = await self._in_shares(step, items, size, run)
        outputs = {step.output: results} if step.output else {}
        return StepOutcome(output_vars=outputs, next_target=step.next)

    async def iterate(
        self, step: ForeachStep, items: Sequence[Any], offset: int, run: StepRun
    ) -> list[Any]:
        """Run the iterations of ``items`` (the first at position ``offset``) in this workflow."""

        def job(position: int, item: Any, ways: int) -> Callable[[], Coroutine[Any, Any, Any]]:
            # `ways`: iterations not yet started, which share what the scope may still start.
            adds = {step.as_: item, step.index_as: position}
            return lambda: run.run_scope(step.steps, adds, f"{run.path}[{position}]", ways)

        jobs = [job(offset + i, item, len(items) - i) for i, item in enumerate(items)]
        fail_fast = step.on_item_error == "fail"
        results = await run.run_concurrently(jobs, step.concurrency, fail_fast)
        return [_element(result) for result in results]

    async def _in_shares(
        self, step: ForeachStep, items: list[Any], size: int, run: StepRun
    ) -> list[Any]:
        variables = {k: v for k, v in run.variables.items() if k != "secrets"}
        plan = _share_plan(len(items), step.concurrency, size)
        dumped = step.model_dump(by_alias=True, exclude_none=True)
        body_starts_more = starts_executions(step.steps)
        own_logs = versions.patched(SHARES_WRITE_LOGS)
        visits = body_size(step.steps)  # per item, loops aside (numbers are unique anyway)
        log, first_seq = run.share_log(len(items) * visits) if own_logs else (None, 0)
        if own_logs:  # every share's start holds them: only those the steps may read
            variables = named_in(dumped["steps"], variables)

        def share(part: Share, ways: int) -> Callable[[], Coroutine[Any, Any, Any]]:
            start = part.start
            chunk = items[start : start + part.count]
            batch = ForeachBatchInput(
                step=dumped | {"concurrency": part.concurrency},
                path=run.path,
                items=chunk,
                offset=start,
                variables=variables,
                strict_indexes=run.strict_indexes,
                cel_conformant=run.cel_conformant,
                log=log,
                first_seq=first_seq + start * visits,
                hand_back=math.ceil(STATUS_STEP_WINDOW / len(plan.shares)) if own_logs else 0,
            )
            child = run.input.model_copy(update={"batch": batch, "carried": None, "input_vars": {}})

            async def go() -> ForeachBatchResult:
                # A share is an execution of the run's tree; its iterations' children too.
                grant = run.pay_for_child(body_starts_more, ways)
                run.expect_wait(None)  # a share takes what its items take
                try:
                    result: ForeachBatchResult = await workflow.execute_child_workflow(
                        FOREACH_BATCH_TYPE,
                        child.model_copy(update={"descendants_left": grant}),
                        id=f"{run.execution_id}-{step.id}-{run.seq}-{start}",
                        result_type=ForeachBatchResult,
                        cancellation_type=ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                        static_summary=f"{run.path}[{start}..{start + len(chunk) - 1}]",
                    )
                except ChildWorkflowError as err:
                    cause = err.cause
                    if isinstance(cause, ApplicationError) and cause.type:
                        raise StepFailed(cause.message, cause.type) from None
                    raise
                run.adopt(result.records, result.steps_done, written=log is not None)
                run.refund(result.descendants_left)
                return result

            return go

        results = await run.run_concurrently(
            [share(part, len(plan.shares) - i) for i, part in enumerate(plan.shares)],
            plan.at_once,
            fail_fast=True,  # a share fails only under on_item_error "fail"
        )
        return [element for result in results for element in result.results]


def _share_plan(items: int, concurrency: int, largest: int) -> SharePlan:
    """The way this run cuts its list (the newest its markers allow)."""
    if not versions.patched(PATCH_BALANCED_SHARES):
        return brim_full(items, concurrency, largest)
    plan = balanced(items, concurrency, largest)
    filled = filling(items, concurrency, largest)
    waves = in_waves(items, concurrency, largest)
    if waves != filled and versions.patched_since_settled(SHARES_IN_WAVES):
        return waves
    if filled != plan and versions.patched_since_settled(SHARES_FILL_CONCURRENCY):
        return filled
    return plan


async def run_share(batch: ForeachBatchInput, run: StepRun) -> list[Any]:
    """A share's iterations, in the ForeachBatch child workflow that runs them (its results
    in item order; none for a step without ``output`` from a share that writes its log, whose
    parent keeps nothing of them)."""
    step = ForeachStep.model_validate(batch.step)
    kind = REGISTRY[ForeachKind.type]
    assert isinstance(kind, ForeachKind)
    results = await kind.iterate(step, batch.items, batch.offset, run)
    return results if step.output or batch.log is None else []


def named_in(steps: Any, variables: dict[str, Any]) -> dict[str, Any]:
    """The variables whose name appears as a word anywhere in ``steps`` (templates and CEL
    alike name what they read). Without it each share's start carried every variable: a
    foreach over a 10,000-item input held that list once per share in the parent's history."""
    text = json.dumps(steps)
    return {
        name: value
        for name, value in variables.items()
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text)
    }


def _element(result: Any) -> Any:
    if isinstance(result, StepFailed):
        return {
            "error": {
                "type": result.failure_type,
                "message": str(result),
                "step_id": getattr(result, "step_id", None),
            }
        }
    if isinstance(result, BaseException):
        raise result
    return result
