"""Dependencies of the routes: settings, the caller's key, and the services.

Every dependency is ``async def``: none of them blocks, and FastAPI runs a plain ``def``
dependency in its thread pool, a thread hop per dependency per request (about a third of the
API's CPU per start, measured in bench/README.md).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from activities.logs import WorkflowLogger
from activities.runtime.settings import Settings
from activities.runtime.temporal_client import connect
from activities.runtime.tracing import API_SERVICE
from api.server.auth import KeyRing, Principal
from api.server.db.store import DatabaseDefinitionStore
from api.server.definitions import DefinitionService
from api.server.errors import ApiError
from api.server.executions import (
    Controller,
    Lister,
    PageTokens,
    Reader,
    Rerunner,
    Starter,
)
from api.server.limits import FailedAuthThrottle, RateLimiter, retry_after_header
from api.server.pollers import WorkerPollers
from api.server.status import ClosedAnswers

logger = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the API process holds for its lifetime (built in api.server.main.create_app)."""

    settings: Settings
    store: DatabaseDefinitionStore
    logs: WorkflowLogger
    keys: KeyRing
    limiter: RateLimiter
    client: Client | None = None
    signal_limiter: RateLimiter | None = None
    page_tokens: PageTokens = field(default_factory=lambda: PageTokens(b""))
    connect_error: str | None = None
    _connecting: asyncio.Task[None] | None = field(default=None, repr=False)
    # Apart from `limiter` on purpose: failed attempts can fill this table, never the keys'.
    auth_throttle: FailedAuthThrottle = field(init=False, repr=False)
    # Whether a worker polls the task queue: one cached check per process (api/server/pollers.py),
    # read by every start and refreshed by /readyz.
    pollers: WorkerPollers = field(init=False, repr=False)
    # Finished runs' status answers, shared by every request of this process (api/server/status.py).
    closed_answers: ClosedAnswers = field(default_factory=ClosedAnswers, repr=False)

    def __post_init__(self) -> None:
        self.auth_throttle = FailedAuthThrottle(
            self.settings.api_failed_auth_per_minute, self.settings.api_failed_auth_burst
        )
        self.pollers = WorkerPollers(self.settings)

    async def connect_forever(self, retry_seconds: float = 2.0) -> None:
        """Keep trying to reach Temporal; the API answers 503 until it has."""
        while self.client is None:
            try:
                self.client = await connect(self.settings, service_name=API_SERVICE)
                self.connect_error = None
                logger.info("connected to Temporal at %s", self.settings.temporal_address)
            except Exception as err:
                self.connect_error = str(err) or type(err).__name__
                await asyncio.sleep(retry_seconds)


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.engine
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


# Declares the scheme in the OpenAPI document (Swagger UI's Authorize button) on every route
# that takes a key. auto_error=False: it only parses the header (None when missing or not
# Bearer); the 401 below is the API's own, in its own shape.
bearer = HTTPBearer(
    scheme_name="bearerAuth",
    description="An API key from API_KEYS or API_KEYS_FILE: `Authorization: Bearer <key>`.",
    auto_error=False,
)


async def current_key(
    request: Request,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Authenticate the Bearer key (401), then apply the key's rate limit (429).

    A failed attempt is charged to the client address's throttle (429 past its budget), never
    to a key's bucket; a good key is never held back by its address's failures.
    """
    principal = state.keys.authenticate(credentials.credentials if credentials else None)
    if principal is None:
        raise state.auth_throttle.refuse(
            request,
            ApiError(
                401,
                "unauthorized",
                "missing or unknown API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            ),
        )
    wait = state.limiter.check(principal.name)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests for key '{principal.name}'; retry after {wait:.1f}s",
            headers={"Retry-After": retry_after_header(wait)},
        )
    return principal


async def get_client(state: StateDep) -> Client:
    if state.client is None:
        raise ApiError(
            503,
            "temporal_unavailable",
            f"Temporal at {state.settings.temporal_address} is not reachable yet"
            + (f" ({state.connect_error})" if state.connect_error else ""),
            headers={"Retry-After": "2"},
        )
    return state.client


ClientDep = Annotated[Client, Depends(get_client)]


async def get_starter(state: StateDep, client: ClientDep) -> Starter:
    return Starter(client, state.settings, state.store, state.pollers)


async def get_reader(state: StateDep, client: ClientDep) -> Reader:
    return Reader(client, state.settings, state.logs, state.closed_answers)


StarterDep = Annotated[Starter, Depends(get_starter)]
ReaderDep = Annotated[Reader, Depends(get_reader)]


async def get_lister(state: StateDep, client: ClientDep) -> Lister:
    return Lister(client, state.settings, state.page_tokens)


async def get_controller(state: StateDep, reader: ReaderDep) -> Controller:
    return Controller(reader, state.settings, state.signal_limiter)


async def get_rerunner(
    state: StateDep, client: ClientDep, reader: ReaderDep, starter: StarterDep
) -> Rerunner:
    return Rerunner(client, state.logs, reader, starter)


SettingsDep = Annotated[Settings, Depends(get_settings)]
CurrentKey = Annotated[Principal, Depends(current_key)]
ListerDep = Annotated[Lister, Depends(get_lister)]
ControllerDep = Annotated[Controller, Depends(get_controller)]
RerunnerDep = Annotated[Rerunner, Depends(get_rerunner)]


async def get_definitions(state: StateDep) -> DefinitionService:
    # No Temporal client needed to read or validate: those work while Temporal is down.
    return DefinitionService(state.store, state.settings, state.client)


DefinitionServiceDep = Annotated[DefinitionService, Depends(get_definitions)]
