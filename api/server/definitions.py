"""DefinitionService: what the definition routes do (save, read, list, delete, validate),
beside the execution services of api/server/executions/; the routes stay thin over it."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from activities.providers import provider_problems
from activities.runtime.settings import Settings
from api.server.auth import Action, Principal
from api.server.errors import ApiError
from api.server.library import library_for
from api.server.schedule_checks import interval_problem, schedule_problems, trigger_count_problem
from api.server.schemas import WorkflowPublic, WorkflowSaved, WorkflowSummary
from api.server.store import (
    DefinitionNotFound,
    DefinitionStore,
    StoredDefinition,
    valid_workflow_id,
)
from api.server.triggers import delete_schedules, sync_schedules
from api.server.webhooks import verifier_for
from api.server.webhooks.secrets import secrets_named
from workflows.definition import ScheduleTrigger, WebhookTrigger, WorkflowDefinition
from workflows.errors import DefinitionError, Problem
from workflows.kinds.base import called_workflows
from workflows.run_inputs import checked_inputs
from workflows.validation import check_definition

RESERVED_IDS = frozenset({"run", "validate"})


class DefinitionService:
    def __init__(self, store: DefinitionStore, settings: Settings, client: Client | None) -> None:
        self._store = store
        self._settings = settings
        self._client = client

    # -- checks -----------------------------------------------------------------------------

    def problems(self, document: Any) -> tuple[WorkflowDefinition | None, list[Problem]]:
        """Every problem of a document: size, shape, whole-document checks, trigger inputs."""
        limit = self._settings.definition_max_steps
        if isinstance(document, dict) and isinstance(document.get("steps"), list):
            count = len(document["steps"])
            if count > limit:
                return None, [
                    Problem(
                        "$.steps",
                        f"{count} steps; the limit is {limit} (DEFINITION_MAX_STEPS)",
                        code="too_many_steps",
                    )
                ]
        too_many = trigger_count_problem(document, self._settings)
        if too_many is not None:
            return None, [too_many]
        definition, problems = check_definition(document)
        if definition is not None and not problems:
            problems.extend(self._trigger_problems(definition))
            cost_budget = definition.budget is not None and definition.budget.max_cost_usd
            problems.extend(
                provider_problems(definition.steps, self._settings.providers, bool(cost_budget))
            )
        return definition, problems

    async def schedule_problems(self, definition: WorkflowDefinition) -> list[Problem]:
        """What only Temporal can say of the schedule triggers (api/server/schedule_checks.py);
        nothing without a Temporal connection (a save then answers 503 anyway)."""
        if self._client is None or not definition.schedules():
            return []
        return await schedule_problems(self._client, self._settings, definition)

    def _trigger_problems(self, definition: WorkflowDefinition) -> list[Problem]:
        """What a trigger needs from this deployment: schedule inputs the `inputs` schema
        takes, and a webhook secret the API holds (else every delivery would be refused)."""
        problems = []
        for index, trigger in enumerate(definition.triggers):
            where = f"$.triggers[{index}]"
            if isinstance(trigger, ScheduleTrigger):
                if (often := interval_problem(where, trigger, self._settings)) is not None:
                    problems.append(often)
                inputs = trigger.input_vars
                problems += checked_inputs(definition.inputs, inputs, f"{where}.input_vars")[1]
            else:
                problems += self._secret_problems(f"{where}.secret", trigger)
        return problems

    def _secret_problems(self, where: str, trigger: WebhookTrigger) -> list[Problem]:
        """The named secret is held, and every value listed under it is of the scheme's form."""
        secrets = secrets_named(self._settings, trigger.secret)
        if secrets is None:
            return [
                Problem(
                    where,
                    f"the webhook trigger names secret '{trigger.secret}', which this API "
                    "does not hold: add it to WEBHOOK_SECRETS (a JSON object of name -> "
                    "secret, or -> a list of secrets while rotating) where the API runs, or "
                    "name a secret it holds; until then every delivery would be refused",
                    code="unknown_webhook_secret",
                )
            ]
        verifier = verifier_for(trigger.scheme)
        problems = []
        for position, secret in enumerate(secrets):
            wrong = verifier.secret_problem(secret)
            if wrong is not None:
                which = f"'{trigger.secret}'" + (f"[{position}]" if len(secrets) > 1 else "")
                problems.append(
                    Problem(
                        where,
                        f"WEBHOOK_SECRETS {which} cannot sign scheme '{trigger.scheme}': {wrong}",
                        code="invalid_webhook_secret",
                    )
                )
        return problems

    # -- the routes' operations -------------------------------------------------------------

    async def save(self, workflow_id: str, document: Any, key: Principal) -> WorkflowSaved:
        self._visible(key, workflow_id)
        key.require(Action.MANAGE, "save definitions")
        client = self._temporal()  # schedules follow the save: nothing is saved without it
        if not valid_workflow_id(workflow_id) or workflow_id in RESERVED_IDS:
            raise ApiError(
                422,
                "invalid_workflow_id",
                f"'{workflow_id}' cannot be a workflow id: use [A-Za-z0-9_-]{{1,64}}, "
                "not run/validate",
                "$.id",
            )
        if isinstance(document, dict):
            document.setdefault("id", int(workflow_id) if workflow_id.isdigit() else workflow_id)
        definition, problems = self.problems(document)
        if definition is not None and not problems:
            # Before the version moves: a schedule Temporal refuses saves nothing.
            problems = await self.schedule_problems(definition)
        if problems:
            raise ApiError.from_problems(422, problems)
        assert definition is not None
        _require_callees_in_scope(key, definition)
        try:
            saved = await self._store.save(workflow_id, document)
        except DefinitionError as err:
            raise ApiError.from_problems(422, err.problems) from None
        stored = saved.stored
        schedules = await sync_schedules(
            client, self._settings, stored, await self._schedule_library(stored)
        )
        return WorkflowSaved(
            **saved_version(stored),
            created=saved.created,
            changed=saved.changed,
            schedules=schedules,
            webhook=f"/api/hooks/{workflow_id}" if stored.definition.webhook() else None,
        )

    async def list(self, key: Principal) -> list[WorkflowSummary]:
        return [
            summary(stored)
            for stored in await self._store.list_definitions()
            if key.sees(stored.workflow_id)
        ]

    async def get(self, workflow_id: str, key: Principal, version: int | None) -> WorkflowPublic:
        self._visible(key, workflow_id)
        try:
            stored = await self._store.get(workflow_id, version)
        except DefinitionNotFound as err:
            raise ApiError(404, "workflow_not_found", str(err)) from None
        except DefinitionError as err:
            raise ApiError.from_problems(422, err.problems) from None
        return WorkflowPublic(
            **saved_version(stored),
            versions=await self._store.versions(workflow_id),
            definition=stored.document,
        )

    async def delete(self, workflow_id: str, key: Principal) -> None:
        self._visible(key, workflow_id)
        key.require(Action.MANAGE, "delete definitions")
        client = self._temporal()
        try:
            await self._store.delete(workflow_id)
        except DefinitionNotFound as err:
            raise ApiError(404, "workflow_not_found", str(err)) from None
        await delete_schedules(client, workflow_id)

    # -- helpers ----------------------------------------------------------------------------

    async def _schedule_library(self, stored: StoredDefinition) -> dict[str, Any]:
        """The sub-workflows a schedule's runs call: the versions current at this save."""
        if not stored.definition.schedules():
            return {}
        try:
            return dict(await library_for(stored.definition, self._store))
        except ApiError:
            return {}  # a run then fails its sub_workflow step, naming the missing workflow

    def _temporal(self) -> Client:
        if self._client is None:
            raise ApiError(
                503,
                "temporal_unavailable",
                f"Temporal at {self._settings.temporal_address} is not reachable yet",
                headers={"Retry-After": "2"},
            )
        return self._client

    @staticmethod
    def _visible(key: Principal, workflow_id: str) -> None:
        if not key.sees(workflow_id):
            raise ApiError(404, "workflow_not_found", f"no workflow named '{workflow_id}'")


def saved_version(stored: StoredDefinition) -> dict[str, Any]:
    """The fields of :class:`~api.server.schemas.SavedVersion`: which version this is."""
    return {
        "workflow_id": stored.workflow_id,
        "version": stored.version,
        "hash": stored.hash,
        "saved_at": stored.saved_at,
    }


def summary(stored: StoredDefinition) -> WorkflowSummary:
    definition = stored.definition
    return WorkflowSummary(
        **saved_version(stored),
        name=definition.name,
        description=definition.description,
        steps=len(definition.steps),
        triggers=[t.type for t in definition.triggers],
    )


def _require_callees_in_scope(key: Principal, definition: WorkflowDefinition) -> None:
    """A key saves only definitions whose sub-workflows and agent workflow tools it may run
    itself: otherwise a key scoped to one workflow could reach any other through a child."""
    hidden = sorted({wid for wid, _ in called_workflows(definition.steps) if not key.sees(wid)})
    if hidden:
        raise ApiError(
            403,
            "workflow_out_of_scope",
            f"the definition calls workflow {', '.join(repr(h) for h in hidden)}, outside key "
            f"'{key.name}''s scope; a key saves only definitions whose sub-workflows and agent "
            "workflow tools it may run itself",
        )
