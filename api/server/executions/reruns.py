"""Rerunning a finished execution: a new one of the same workflow that reuses the results its
source already paid for (README "Rerun from a step"; api/server/rerun.py reads them from the
source's history)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowExecutionDescription

from activities.logs import InvalidExecutionId, WorkflowLogger
from api.server.auth import Action, Principal
from api.server.errors import ApiError
from api.server.executions.common import logger, temporal_status
from api.server.executions.reading import Reader
from api.server.executions.starting import Starter
from api.server.rerun import cutoff_for, inherited, recorded_results
from api.server.schemas import RerunCreate, RunPublic
from api.server.store import StoredDefinition
from workflows.definition import WorkflowDefinition
from workflows.kinds import kind_of
from workflows.shared import ExecutionInput


@dataclass
class Rerunner:
    """Reruns finished executions in the key's scope (a role that may run)."""

    client: Client
    logs: WorkflowLogger
    reader: Reader
    starter: Starter

    async def rerun(self, source_id: str, body: RerunCreate, principal: Principal) -> RunPublic:
        """Start a new execution of a finished one, reusing the results it already paid for."""
        description, completed = await self._finished(source_id, principal)
        records = await self._records(source_id)
        cutoff = cutoff_for(records, body.from_step, completed)
        first_run = description.raw_description.workflow_execution_info.first_run_id
        recorded = await recorded_results(
            self.client, source_id, first_run or description.run_id, cutoff
        )
        source = recorded.input
        if source is None:
            raise ApiError(
                409, "rerun_unavailable", f"the history of '{source_id}' is not readable"
            )
        stored = await self.starter.runnable(
            source.definition.key, principal, _version(body, source)
        )
        _check_from_step(body.from_step, stored, records)
        reuse = inherited(source_id, source, records, cutoff) | recorded.results
        input_vars = body.input_vars if body.input_vars is not None else source.input_vars
        run = await self.starter.start(
            stored.workflow_id,
            input_vars,
            principal,
            version=stored.version,
            rerun={"rerun_of": source_id, "reuse": reuse},
        )
        logger.info(
            "rerun of %s as %s: %d results offered for reuse",
            source_id,
            run.execution_id,
            len(reuse),
        )
        return run

    async def _finished(
        self, source_id: str, principal: Principal
    ) -> tuple[WorkflowExecutionDescription, bool]:
        """The source, which must have finished; and whether it completed."""
        _, description = await self.reader.describe(source_id, principal)
        principal.require(Action.RUN, "start executions")
        _, status = temporal_status(description.status)
        if status == "running":
            raise ApiError(
                409,
                "execution_running",
                f"execution '{source_id}' is still running: rerun it once it has finished "
                "(or cancel it first)",
            )
        return description, status == "completed"

    async def _records(self, source_id: str) -> list[dict[str, Any]]:
        """The source's step records, from its log (none if it has no log)."""
        try:
            log = await self.logs.aread(source_id) or {}
        except InvalidExecutionId:
            log = {}
        return list(log.get("steps") or [])


def _version(body: RerunCreate, source: ExecutionInput) -> int | None:
    """The version to run: the source's (``same``), the current (``latest``: None), or one."""
    if body.version == "same":
        return source.definition_version
    return None if body.version == "latest" else int(body.version)


def _check_from_step(
    from_step: str | None, stored: StoredDefinition, records: list[dict[str, Any]]
) -> None:
    if from_step is not None and not _names_a_step(stored.definition, from_step, records):
        raise ApiError(
            422,
            "unknown_step",
            f"'{from_step}' is not a step of workflow '{stored.workflow_id}' "
            f"v{stored.version} (give a step id or a path such as each[2].fetch)",
            "$.from_step",
        )


def _names_a_step(definition: WorkflowDefinition, name: str, records: list[dict[str, Any]]) -> bool:
    """A step id of the definition (nested lists too), or a path the source ran."""
    if any(name == record.get("path") for record in records):
        return True
    work = list(definition.steps)
    while work:
        step = work.pop()
        if step.id == name:
            return True
        for scope in kind_of(step).scopes(step):
            work.extend(scope.steps)
    return False
