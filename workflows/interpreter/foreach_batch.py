"""ForeachBatchWorkflow: a share of a large `foreach`, run as a child workflow so the parent's
history stays short (workflows/kinds/foreach.py decides the shares). It runs the share's
iterations with the interpreter's own machinery and hands back their results and step records;
it writes no log and sets no search attributes of its own (its parent's log and status show its
steps)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.errors import StepFailed
    from workflows.interpreter import patches
    from workflows.interpreter.executor import WorkflowExecutor
    from workflows.kinds.foreach import run_share
    from workflows.messages import FOREACH_BATCH_TYPE, ForeachBatchResult
    from workflows.shared import ExecutionInput


@workflow.defn(name=FOREACH_BATCH_TYPE)
class ForeachBatchWorkflow(WorkflowExecutor):
    @workflow.init
    def __init__(self, input: ExecutionInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: ExecutionInput) -> ForeachBatchResult:  # type: ignore[override]
        batch = input.batch
        assert batch is not None, "a ForeachBatch run needs input.batch"
        self._log.batched = True
        self._processor.strict_indexes = patches.strict_indexes(batch.strict_indexes)
        self._processor.cel_conformant = batch.cel_conformant  # the parent's evaluator
        variables = dict(batch.variables)
        view = self._processor.view(batch.path, self._book.seq, variables, self._services)
        try:
            results = await run_share(batch, view)
        except StepFailed as failure:
            raise ApplicationError(
                str(failure), type=failure.failure_type, non_retryable=True
            ) from None
        return ForeachBatchResult(
            results=results,
            records=list(self._log.pending),
            steps_done=self._book.done,
            descendants_left=self._allowances.tree.left,
        )
