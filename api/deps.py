"""Dependencies of the routes: settings, the definition store and the execution service."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from temporalio.client import Client

from activities.logs import WorkflowLogger
from api.errors import ApiError
from api.executions import ExecutionService
from api.store import DefinitionStore
from workflows.settings import Settings
from workflows.temporal_client import connect

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the API process holds for its lifetime (built in the lifespan of api.main)."""

    settings: Settings
    store: DefinitionStore
    logs: WorkflowLogger
    client: Client | None = None
    connect_error: str | None = None
    _connecting: asyncio.Task[None] | None = field(default=None, repr=False)

    async def connect_forever(self, retry_seconds: float = 2.0) -> None:
        """Keep trying to reach Temporal; the API answers 503 until it has."""
        while self.client is None:
            try:
                self.client = await connect(self.settings)
                self.connect_error = None
                logger.info("connected to Temporal at %s", self.settings.temporal_address)
            except Exception as err:
                self.connect_error = str(err) or type(err).__name__
                await asyncio.sleep(retry_seconds)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.engine
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_service(state: StateDep) -> ExecutionService:
    if state.client is None:
        raise ApiError(
            503,
            "temporal_unavailable",
            f"Temporal at {state.settings.temporal_address} is not reachable yet"
            + (f" ({state.connect_error})" if state.connect_error else ""),
            headers={"Retry-After": "2"},
        )
    return ExecutionService(state.client, state.settings, state.store, state.logs)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[ExecutionService, Depends(get_service)]
