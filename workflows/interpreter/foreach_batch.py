"""ForeachBatchWorkflow: a share of a large `foreach`, run as a child workflow so the parent's
history stays short (workflows/kinds/foreach.py decides the shares). It runs the share's
iterations with the interpreter's own machinery. It writes its step records into its parent's
log (shares of older parents handed them all back for the parent to write) and hands back its
results and its latest records, which join the parent's status; it sets no search attributes
of its own."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.errors import StepFailed
    from workflows.interpreter import patches
    from workflows.interpreter.executor import WorkflowExecutor
    from workflows.kinds.foreach import run_share
    from workflows.messages import (
        FOREACH_BATCH_TYPE,
        ForeachBatchInput,
        ForeachBatchResult,
        StepRecord,
    )
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
        if batch.log is not None:  # it writes its records to the parent's log itself
            self._log.write_for_share(batch.log)
            self._book.seq = batch.first_seq
        self._processor.strict_indexes = patches.strict_indexes(batch.strict_indexes)
        self._processor.cel_conformant = batch.cel_conformant  # the parent's evaluator
        variables = dict(batch.variables)
        view = self._processor.view(batch.path, self._book.seq, variables, self._services)
        try:
            results = await run_share(batch, view)
        except StepFailed as failure:
            await self._write_records(batch)  # the failed item's record too
            raise ApplicationError(
                str(failure), type=failure.failure_type, non_retryable=True
            ) from None
        await self._write_records(batch)
        return ForeachBatchResult(
            results=results,
            records=self._handed_back(batch),
            steps_done=self._book.done,
            descendants_left=self._allowances.tree.left,
        )

    def _handed_back(self, batch: ForeachBatchInput) -> list[StepRecord]:
        """The records the parent takes: the latest ``hand_back`` (already in the log) from a
        share that writes its own, else every record (the parent writes them)."""
        if batch.log is None:
            return list(self._log.pending)
        return self._book.recent[-batch.hand_back :] if batch.hand_back else []

    async def _write_records(self, batch: ForeachBatchInput) -> None:
        """The records no activity carried to the log (a share that writes its own)."""
        if batch.log is not None and self._log.pending:
            await self._log.flush("share's step records")
