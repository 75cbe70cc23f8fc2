"""The web console at ``/console``: definitions, runs and executions in a browser.

The console is static files (plain HTML, CSS and ES modules: no build step, nothing from a
CDN) that call the JSON API with ``fetch`` and the same API keys. This module serves the shell
page and those files; it holds no logic of its own, and neither route needs a key: the page
asks for one and keeps it in the tab's ``sessionStorage``, so nothing secret is ever in a URL.

The routes are left out of the OpenAPI document (``include_in_schema=False``): they are not
part of the API.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from workflows.definition import definition_json_schema

__all__ = ["CONSOLE_URL", "STATIC_DIR", "router"]

CONSOLE_URL = "/console"
STATIC_URL = f"{CONSOLE_URL}/static"
STATIC_DIR = Path(__file__).resolve().parent / "static"
# Read once: the shell is a few hundred bytes and the same for every request.
SHELL_TEMPLATE = (Path(__file__).resolve().parent / "shell.html").read_text(encoding="utf-8")

# The page may load and call only this origin: a script injected through some rendered value
# could not send the key anywhere else, and nothing can come from a CDN by accident.
# `style-src 'self'` still lets scripts set element.style properties (CSSOM), which the graph
# and the editor use; inline <style>/<script> and style="" attributes are refused.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
_SHELL_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # The shell is tiny; always fetch it fresh so a new release's files are picked up.
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)
# StaticFiles does the careful parts (no path escapes the directory, ETag/304, HEAD); it is
# called from a route rather than mounted because APIRouter.include_router drops mounts.
_static = StaticFiles(directory=STATIC_DIR)


def _root(request: Request) -> str:
    """The prefix the app is served under (a proxy's root_path), without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get(CONSOLE_URL, response_class=HTMLResponse, include_in_schema=False)
async def console_page(request: Request) -> HTMLResponse:
    """The single page; its hash router (`#/workflows`, `#/executions/<id>`) picks the view."""
    root = _root(request)
    html = SHELL_TEMPLATE.replace("%ROOT%", root).replace("%STATIC%", root + STATIC_URL)
    return HTMLResponse(html, headers=_SHELL_HEADERS)


@router.get(f"{CONSOLE_URL}/", include_in_schema=False)
async def console_slash(request: Request) -> RedirectResponse:
    """`/console/` would make the page's relative links resolve under the wrong folder."""
    return RedirectResponse(_root(request) + CONSOLE_URL, status_code=308)


@router.get(STATIC_URL + "/workflow-definition.schema.json", include_in_schema=False)
async def definition_schema() -> Response:
    """The definition format's JSON Schema, as the models export it: the graph reads the
    step kinds' roles from it (graph/kinds.js), so a new kind needs no console change."""
    return Response(
        _schema_text(),
        media_type="application/schema+json",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@lru_cache(maxsize=1)
def _schema_text() -> str:
    return json.dumps(definition_json_schema(), indent=2, sort_keys=True)


@router.get(STATIC_URL + "/{path:path}", include_in_schema=False)
async def console_static(path: str, request: Request) -> Response:
    response = await _static.get_response(path, request.scope)
    # Revalidate every time (answered 304 when unchanged): ES modules import each other by
    # plain URL, so a version query string could not reach the nested imports.
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
