"""The FastAPI application: `uvicorn --factory api.main:create_app` (OpenAPI at /docs)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.service import RPCError

from activities.logs import WorkflowLogger
from api.auth import load_key_ring
from api.deps import AppState
from api.errors import error_body, install_error_handlers
from api.executions import PageTokens, page_token_secret
from api.limits import BodySizeLimit, RateLimiter
from api.routes import executions, health, hooks, runs, workflows
from api.store import FileDefinitionStore
from workflows.schema_export import definition_schema
from workflows.settings import Settings, get_settings

logger = logging.getLogger(__name__)

DESCRIPTION = """
Durable JSON workflows on Temporal. Save a definition, start executions, watch them here or in
the Temporal Web UI, cancel them, signal them.

**Keys.** Send `Authorization: Bearer <key>`. Roles: `admin` (everything), `runner` (run, read,
cancel and signal the workflows in its scope), `viewer` (read only). No or an unknown key: 401;
a role without the right: 403; anything outside the key's scope: 404.

**Errors** always have the shape `{"errors": [{"code", "message", "path"?}]}`.
"""


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    """Build the app. Tests pass a connected client; production connects in the lifespan."""
    settings = settings or get_settings()
    state = AppState(
        settings=settings,
        store=FileDefinitionStore(settings.workflow_definitions_dir),
        logs=WorkflowLogger(settings.workflow_log_dir),
        keys=load_key_ring(settings),
        limiter=RateLimiter(settings.api_rate_limit_per_minute, settings.api_rate_limit_burst),
        client=client,
        signal_limiter=RateLimiter(
            settings.api_signal_rate_per_minute,
            max(1, int(settings.api_signal_rate_per_minute // 4)),
        ),
        page_tokens=PageTokens(page_token_secret(settings)),
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
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
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

    for module in (health, runs, workflows, executions, hooks):
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the workflow definition format as a named component."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schema = definition_schema()
    schema.pop("$schema", None)
    schema.pop("$id", None)
    definitions = schema.pop("$defs", {})
    rewrite = json.dumps({"root": schema, "defs": definitions}).replace(
        '"#/$defs/', '"#/components/schemas/Definition'
    )
    parts = json.loads(rewrite)
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for name, value in parts["defs"].items():
        components[f"Definition{name}"] = value
    components["WorkflowDefinitionDocument"] = parts["root"]
    app.openapi_schema = document
    return document
