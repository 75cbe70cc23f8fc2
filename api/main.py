"""The FastAPI application: `uvicorn api.main:app` (OpenAPI at /docs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.service import RPCError

from activities.logs import WorkflowLogger
from api.deps import AppState
from api.errors import error_body, install_error_handlers
from api.routes import executions, health, runs
from api.store import FileDefinitionStore
from workflows.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DESCRIPTION = """
Durable JSON workflows on Temporal. Save a definition, start executions, watch them here or in
the Temporal Web UI, cancel them, signal them. Errors always have the shape
`{"errors": [{"code", "message", "path"?}]}`.
"""


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    """Build the app. Tests pass a connected client; production connects in the lifespan."""
    settings = settings or get_settings()
    state = AppState(
        settings=settings,
        store=FileDefinitionStore(settings.workflow_definitions_dir),
        logs=WorkflowLogger(settings.workflow_log_dir),
        client=client,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        connecting = None
        if state.client is None:
            connecting = asyncio.create_task(state.connect_forever())
        yield
        if connecting is not None:
            connecting.cancel()

    app = FastAPI(
        title="Workflow engine",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.engine = state
    install_error_handlers(app)

    @app.exception_handler(RPCError)
    async def _temporal_error(_: object, exc: RPCError) -> JSONResponse:
        logger.warning("Temporal call failed: %s", exc)
        return JSONResponse(
            error_body(
                [
                    {
                        "code": "temporal_unavailable",
                        "message": f"Temporal call failed: {exc.message}",
                    }
                ]
            ),
            503,
            headers={"Retry-After": "2"},
        )

    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(executions.router)
    return app
