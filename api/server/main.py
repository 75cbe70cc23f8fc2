"""The FastAPI application: `uvicorn --factory api.server.main:create_app` (OpenAPI at /docs).

/docs (Swagger UI) loads its script, style sheet and favicon from this process (the files of
the `fastapi-offline` package), never from a CDN, so it works without internet. There is no
/redoc: ReDoc's page loads its logo from Redocly's CDN whatever it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client
from temporalio.service import RPCError

from activities.logs import WorkflowLogger
from activities.runtime.settings import Settings, get_settings
from activities.runtime.storage import check_storage, open_stores
from api.console import router as console_router
from api.server.auth import StoredKey, load_key_ring
from api.server.db import DatabaseDefinitionStore, prepare_database
from api.server.db.engine import open_engine
from api.server.deps import AppState
from api.server.errors import error_body, install_error_handlers
from api.server.executions.page_tokens import PageTokens, page_token_secret
from api.server.limits import BodySizeLimit, RateLimiter
from api.server.mcp import MCP_PATH, MCPEndpoint
from api.server.observability import install_observability
from api.server.routes import executions, health, hooks, runs, tests, workflows
from api.server.schemas import ErrorResponse
from api.server.web_security import install_web_security
from workflows.definition import definition_json_schema

logger = logging.getLogger(__name__)

DESCRIPTION = """
Durable JSON workflows on Temporal. Save a definition, start executions, watch them here or in
the Temporal Web UI, cancel them, signal them.

**Keys.** Send `Authorization: Bearer <key>` (on this page: **Authorize**, then *Try it
out*). Roles: `admin` (everything), `runner` (run, read, cancel and signal the workflows in its
scope), `viewer` (read only). No or an unknown key: 401; a role without the right: 403;
anything outside the key's scope: 404.

**Errors** always have the shape `{"errors": [{"code", "message", "path"?}]}`.
"""

# Swagger UI's files, shipped inside the fastapi-offline wheel (pyproject.toml).
DOCS_ASSETS_DIR = resources.files("fastapi_offline") / "static"
DOCS_ASSETS_URL = "/docs/assets"
SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    "displayOperationId": True,
    # No badge that sends the document to validator.swagger.io.
    "validatorUrl": None,
}
_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
# FastAPI's own 422 models; the API answers ErrorResponse instead (api/server/errors.py).
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def operation_id(route: APIRoute) -> str:
    """The operationId is the route function's name: `run_workflow`, `get_execution`, ..."""
    return route.name


def create_app(settings: Settings | None = None, client: Client | None = None) -> FastAPI:
    """Build the app. Tests pass a connected client; production connects in the lifespan."""
    settings = settings or get_settings()
    # Logs and large values live in STORAGE_URL, shared with the workers: an unreachable S3
    # endpoint or a missing bucket stops the API here, naming the variable.
    check_storage(settings)
    # The control plane's database: unreachable, unmigrated or newer than this engine stops
    # the API here, naming the URL (password hidden) and what to do.
    prepared = prepare_database(settings)
    state = _app_state(settings, client, prepared.keys)
    mcp = MCPEndpoint(state)  # /mcp: the API as an MCP server (api/server/mcp.py)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        connecting = None
        if state.client is None:
            connecting = asyncio.create_task(state.connect_forever())
        async with mcp.running():
            yield
        if connecting is not None:
            connecting.cancel()
        await state.store.close()

    app = FastAPI(
        title="Workflow engine",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        # /docs is served below from local files; FastAPI's own pages load theirs from a CDN.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    install_web_security(app, settings)  # before the body is read: framing, other sites
    install_observability(app, settings)  # /metrics, JSON logs, tracing: wraps the above
    if prepared.imported:  # once logging is set up (JSON lines with LOG_FORMAT=json)
        logger.warning("first start on this database: %s", prepared.imported)
    app.state.engine = state
    install_error_handlers(app)
    app.exception_handler(RPCError)(_temporal_error)
    app.exception_handler(SQLAlchemyError)(_database_error)
    for module in (health, runs, workflows, tests, executions, hooks):
        app.include_router(module.router)
    app.include_router(console_router)  # /console: static pages, not in the OpenAPI document
    # An ASGI app as the endpoint (Starlette calls it as it is): the SDK answers /mcp itself.
    app.add_route(MCP_PATH, mcp, methods=["GET", "POST", "DELETE"], include_in_schema=False)  # type: ignore[arg-type]
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    _install_docs(app)
    return app


def _app_state(settings: Settings, client: Client | None, keys: list[StoredKey]) -> AppState:
    return AppState(
        settings=settings,
        store=DatabaseDefinitionStore(open_engine(settings.database)),
        logs=WorkflowLogger(open_stores(settings).logs),
        keys=load_key_ring(settings, keys),
        limiter=RateLimiter(settings.api_rate_limit_per_minute, settings.api_rate_limit_burst),
        client=client,
        signal_limiter=RateLimiter(
            settings.api_signal_rate_per_minute,
            max(1, int(settings.api_signal_rate_per_minute // 4)),
        ),
        page_tokens=PageTokens(page_token_secret(settings)),
    )


async def _temporal_error(_: object, exc: RPCError) -> JSONResponse:
    logger.warning("Temporal call failed: %s", exc)
    return JSONResponse(
        error_body(
            [{"code": "temporal_unavailable", "message": f"Temporal call failed: {exc.message}"}]
        ),
        503,
        headers={"Retry-After": "2"},
    )


async def _database_error(_: object, exc: SQLAlchemyError) -> JSONResponse:
    # The database went away after start (PostgreSQL restarting, a failover): a retry helps.
    logger.warning("database call failed: %s", type(exc).__name__)
    return JSONResponse(
        error_body(
            [{"code": "database_unavailable", "message": "the definitions database did not answer"}]
        ),
        503,
        headers={"Retry-After": "2"},
    )


def _install_docs(app: FastAPI) -> None:
    """/docs with every file it loads served by this app (works offline)."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=str(DOCS_ASSETS_DIR)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = root + DOCS_ASSETS_URL
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the workflow definition format as a named component, with
    the error answers in the API's own shape (see `_document_errors`)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schema = definition_json_schema()
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
    _document_errors(document)
    app.openapi_schema = document
    return document


def _document_errors(document: dict[str, Any]) -> None:
    """Every 422 is `ErrorResponse` (what api/server/errors.py answers), never FastAPI's
    `HTTPValidationError`; keyed operations (those with `security`) list 401 and 429."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorResponse" not in components:
        schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components["ErrorResponse"] = schema
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    for path_item in document.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            if operation.get("security"):
                responses.setdefault("401", {"description": "No or unknown API key"})
                responses.setdefault(
                    "429",
                    {
                        "description": "Too many requests for this key, or too many failed "
                        "attempts from this address; see Retry-After"
                    },
                )
            if "requestBody" in operation:
                responses.setdefault("422", {"description": "The body is not valid"})
            for code in ("401", "422", "429"):
                if code in responses:
                    if responses[code].get("description") == "Validation Error":
                        responses[code]["description"] = (
                            "Invalid request: every problem, with its JSON path"
                        )
                    responses[code]["content"] = _ERROR_CONTENT
    leftover = json.dumps(document)
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        if f'"#/components/schemas/{name}"' in leftover:
            raise RuntimeError(f"the OpenAPI document still refers to FastAPI's {name}")
