"""Starting runs: the one check every way to a run passes, then Temporal's start."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.runtime.settings import Settings
from api.server.auth import Action, Principal
from api.server.errors import ApiError, DefinitionNotFound, DuplicateStart
from api.server.executions.common import Links, logger
from api.server.executions.debouncing import debounced_start
from api.server.executions.idempotency import (
    REQUEST_HASH,
    StartId,
    request_hash,
    same_request_run,
    start_id,
)
from api.server.executions.inputs import prepare_inputs
from api.server.executions.options import StartOptions, execution_limits, start_options
from api.server.library import library_for, require_scope
from api.server.pollers import PollerReport, WorkerPollers
from api.server.schemas import ErrorItem, RunPublic
from api.server.store import DefinitionStore, StoredDefinition
from workflows.errors import DefinitionError
from workflows.flow.keys import KeyTemplateError
from workflows.messages import WORKFLOW_TYPE

Pollers = PollerReport | asyncio.Task[PollerReport] | None


@dataclass
class Starter:
    """Starts runs: the one check every way to a run passes, then Temporal's start."""

    client: Client
    settings: Settings
    store: DefinitionStore
    pollers: WorkerPollers | None = None

    @cached_property
    def links(self) -> Links:
        return Links(self.settings)

    async def _load(
        self, workflow_id: str, principal: Principal, version: int | None = None
    ) -> StoredDefinition:
        if not principal.sees(workflow_id):
            raise ApiError(
                404, "workflow_not_found", f"no workflow named '{workflow_id}'", "$.workflow_id"
            )
        try:
            return await self.store.get(workflow_id, version)
        except DefinitionNotFound as err:
            raise ApiError(404, "workflow_not_found", str(err), "$.workflow_id") from None
        except DefinitionError as err:
            raise ApiError.from_problems(422, err.problems) from None

    async def runnable(
        self, workflow_id: str, principal: Principal, version: int | None = None
    ) -> StoredDefinition:
        """The one check every way to a run passes (an API start, a rerun, a webhook; the
        workflows a run calls are checked by :meth:`start` through its library): the key sees
        the workflow and may run it, the workflow is saved now (a deleted one runs on no path),
        and a version other than the current one runs only for a key that manages it."""
        current = await self._load(workflow_id, principal)
        principal.require(Action.RUN, "start executions")
        if version is None or version == current.version:
            return current
        if not principal.can(Action.MANAGE):
            raise ApiError(
                403,
                "superseded_version",
                f"version {version} of workflow '{workflow_id}' is superseded (the current is "
                f"v{current.version}); only a key that may manage the workflow runs a past "
                'version: run the current one (rerun with "version": "latest")',
                "$.version",
            )
        return await self._load(workflow_id, principal, version)

    async def start(
        self,
        workflow_id: str,
        input_vars: Any,
        principal: Principal,
        idempotency_key: str | None = None,
        started_by: str | None = None,
        refuse_duplicate: bool = False,
        version: int | None = None,
        rerun: dict[str, Any] | None = None,
    ) -> RunPublic:
        """Start a run; with ``refuse_duplicate``, an idempotency key already used (running or
        closed) raises :class:`DuplicateStart` instead of answering that execution. ``version``
        pins a past version; ``rerun`` holds a rerun's ``rerun_of`` and ``reuse``."""
        stored = await self.runnable(workflow_id, principal, version)
        options = await self._options(stored, input_vars, principal, started_by, rerun)
        if stored.definition.debounce is not None and not rerun:
            return await self._debounced(stored, options)
        digest = request_hash(stored.workflow_id, input_vars)
        target = start_id(stored.workflow_id, principal.name, idempotency_key, refuse_duplicate)
        # Does a worker poll the queue (else: a `no_worker` warning)? A cached answer costs
        # nothing; a stale one is re-checked while the start RPC runs, never after it.
        pollers: Pollers = None
        if self.pollers is not None:
            pollers = self.pollers.fresh() or self.pollers.refresh(self.client)
        run_id = await self._launch(options, target, digest, refuse_duplicate)
        if idempotency_key is not None and not refuse_duplicate:
            run_id = await same_request_run(
                self.client, target.execution_id, digest, idempotency_key
            )
        assert run_id is not None
        execution_id = target.execution_id
        logger.info(
            "started %s (%s v%d) run %s",
            execution_id,
            stored.workflow_id,
            stored.version,
            run_id,
            extra={"execution_id": execution_id},
        )
        return RunPublic(
            execution_id=execution_id,
            run_id=run_id,
            status="running",
            # Warnings only (a 2xx answer): the run is started either way.
            errors=await _warnings(pollers),
            workflow_id=stored.definition.id,
            definition_version=stored.version,
            links=self.links.of(execution_id, run_id),
            rerun_of=(rerun or {}).get("rerun_of"),
        )

    async def prepared(
        self, stored: StoredDefinition, input_vars: Any, principal: Principal
    ) -> StartOptions:
        """What a run of ``stored`` with these inputs starts with (a test run starts from it,
        api/server/testing.py); refused inputs raise ApiError."""
        return await self._options(stored, input_vars, principal, None, None)

    async def _debounced(self, stored: StoredDefinition, options: StartOptions) -> RunPublic:
        """A start that joins its key's debounce window: the window's run, not started yet."""
        queue = self.settings.temporal_task_queue
        execution_id, delay = await debounced_start(self.client, queue, stored, options)
        logger.info(
            "debounced start of %s (%s v%d)",
            execution_id,
            stored.workflow_id,
            stored.version,
            extra={"execution_id": execution_id},
        )
        return RunPublic(
            execution_id=execution_id,
            run_id="",
            status="running",
            workflow_id=stored.definition.id,
            definition_version=stored.version,
            links=self.links.of(execution_id, None),
            starts_at=datetime.now(UTC) + delay,
        )

    async def _options(
        self,
        stored: StoredDefinition,
        input_vars: Any,
        principal: Principal,
        started_by: str | None,
        rerun: dict[str, Any] | None,
    ) -> StartOptions:
        """The run's input: its checked variables, and every workflow it calls (each one the
        key may run) at the version current now."""
        # Schema validation is bounded (RE2, a time budget) but can take a fraction of a
        # second on a large input: off the event loop, so other requests keep flowing.
        max_bytes = self.settings.api_max_input_bytes
        inputs = await asyncio.to_thread(prepare_inputs, stored, input_vars, max_bytes)
        library = await library_for(stored.definition, self.store)
        require_scope(principal, library)
        try:
            options = start_options(
                stored,
                inputs,
                started_by or principal.name,
                self.settings.execution_max_steps_per_run,
                execution_limits(stored.definition, self.settings),
                library,
                self.settings.api_url_for_runs,
            )
        except KeyTemplateError as err:
            raise ApiError(422, "unresolved_key", str(err), "$.input_vars") from None
        if not rerun:
            return options
        return dataclasses.replace(
            options,
            input=options.input.model_copy(update=rerun),
            static_summary=f"{options.static_summary} · rerun of {rerun['rerun_of']}",
        )

    async def _launch(
        self, options: StartOptions, target: StartId, digest: str, refuse_duplicate: bool
    ) -> str | None:
        """The run Temporal started; None when the execution exists already and Temporal's
        policies answer it instead (an Idempotency-Key repeat)."""
        try:
            handle = await self.client.start_workflow(
                WORKFLOW_TYPE,
                options.input,
                id=target.execution_id,
                task_queue=self.settings.temporal_task_queue,
                search_attributes=options.search_attributes,
                static_summary=options.static_summary,
                static_details=options.static_details,
                memo={REQUEST_HASH: digest},
                id_conflict_policy=target.conflict,
                id_reuse_policy=target.reuse,
            )
        except WorkflowAlreadyStartedError:
            if refuse_duplicate:
                raise DuplicateStart(target.execution_id) from None
            return None
        return handle.result_run_id or handle.first_execution_run_id


async def _warnings(pollers: Pollers) -> list[ErrorItem]:
    if isinstance(pollers, asyncio.Task):
        # Shared with concurrent starts: one caller going away must not cancel it.
        pollers = await asyncio.shield(pollers)
    return pollers.warnings() if pollers is not None else []
