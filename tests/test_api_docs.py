"""The API docs: the OpenAPI document knows about keys, errors and names, and /docs works
offline in a real browser (Debian's Chromium driven by Playwright, never a downloaded one).

The browser test serves the real app on loopback, blocks every request not to 127.0.0.1 (and
asserts none was attempted), authorizes with a key and runs "Try it out". Set
UPDATE_SCREENSHOTS=1 to write its screenshot to docs/screenshots/api-docs.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import ADMIN_KEY, save_definition, serve_api

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "screenshots" / "api-docs.png"
# What a key-less caller may call: liveness, readiness, and webhooks (signed instead).
UNKEYED = {("get", "/healthz"), ("get", "/readyz"), ("post", "/api/hooks/{workflow_id}")}
OPERATION_IDS = {
    ("post", "/api/workflows/run"): "run_workflow",
    ("post", "/api/workflows/validate"): "validate_workflow",
    ("get", "/api/workflows"): "list_workflows",
    ("get", "/api/workflows/{workflow_id}"): "get_workflow",
    ("put", "/api/workflows/{workflow_id}"): "save_workflow",
    ("delete", "/api/workflows/{workflow_id}"): "delete_workflow",
    ("get", "/api/executions"): "list_executions",
    ("get", "/api/executions/{execution_id}"): "get_execution",
    ("post", "/api/executions/{execution_id}/cancel"): "cancel_execution",
    ("post", "/api/executions/{execution_id}/signals/{name}"): "signal_execution",
    ("get", "/api/executions/{execution_id}/log"): "get_execution_log",
    ("get", "/api/executions/{execution_id}/events"): "get_execution_events",
    ("post", "/api/executions/{execution_id}/rerun"): "rerun_execution",
    ("post", "/api/workflows/{workflow_id}/test"): "test_workflow",
    ("get", "/api/executions/{execution_id}/test-case"): "record_test_case",
    ("post", "/api/hooks/{workflow_id}"): "receive_webhook",
    ("get", "/healthz"): "healthz",
    ("get", "/readyz"): "readyz",
}
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
async def api(settings: Settings, client: Client) -> AsyncIterator[str]:
    """The real app on loopback (no worker: nothing here runs a workflow)."""
    async with serve_api(settings, client) as url:
        yield url


async def openapi(api: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as anonymous:
        response = await anonymous.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def concrete(path: str) -> str:
    """A template path with every parameter filled in (`{workflow_id}` -> `x`)."""
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_security_scheme_is_bearer_on_exactly_the_keyed_operations(api: str) -> None:
    document = await openapi(api)
    schemes = document["components"]["securitySchemes"]
    assert list(schemes) == ["bearerAuth"], schemes
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert "security" not in document, "no document-wide requirement: three operations are open"
    ops = operations(document)
    assert set(ops) == set(OPERATION_IDS), set(ops) ^ set(OPERATION_IDS)
    for where, operation in ops.items():
        if where in UNKEYED:
            assert "security" not in operation, where
        else:
            assert operation.get("security") == [{"bearerAuth": []}], where
            assert "401" in operation["responses"], where
    # The document tells the truth: without a key, every keyed operation answers the API's
    # own 401, and none of the others asks for a key.
    async with httpx.AsyncClient(base_url=api, timeout=30) as anonymous:
        for method, path in sorted(ops):
            response = await anonymous.request(method.upper(), concrete(path))
            unauthorized = (
                response.status_code == 401
                and response.json()["errors"][0]["code"] == "unauthorized"
            )
            assert unauthorized == ((method, path) not in UNKEYED), (method, path, response.text)
            if unauthorized:
                assert response.headers["www-authenticate"] == "Bearer"
                assert set(response.json()) == {"errors"}
        # Swagger UI sends exactly this header; it authenticates.
        keyed = await anonymous.get(
            "/api/workflows", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert keyed.status_code == 200, keyed.text


async def test_422_answers_are_documented_as_the_error_shape(api: str) -> None:
    document = await openapi(api)
    text = json.dumps(document)
    for name in ("HTTPValidationError", "ValidationError"):
        assert name not in document["components"]["schemas"], name
        assert f'"#/components/schemas/{name}"' not in text, name
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    with_422 = []
    for where, operation in operations(document).items():
        for code in ("401", "422", "429"):
            if code in operation["responses"]:
                content = operation["responses"][code]["content"]
                assert content == {"application/json": {"schema": error_ref}}, (where, code)
        if "422" in operation["responses"]:
            with_422.append(operation["operationId"])
        if "requestBody" in operation or operation.get("parameters"):
            assert "422" in operation["responses"], where
    assert {"run_workflow", "list_executions", "save_workflow"} <= set(with_422)
    error = document["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["errors"]
    assert error["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/ErrorItem"}
    # And that is what a 422 really is.
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        response = await http.get(
            "/api/executions",
            params={"page_size": 0},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
    assert response.status_code == 422, response.text
    body = response.json()
    assert set(body) == {"errors"}
    assert body["errors"][0]["code"] == "invalid_request"
    assert body["errors"][0]["path"] == "$.page_size"


async def test_operation_ids_are_the_route_names(api: str) -> None:
    ops = operations(await openapi(api))
    ids = [operation["operationId"] for operation in ops.values()]
    assert len(ids) == len(set(ids)), ids
    assert {where: op["operationId"] for where, op in ops.items()} == OPERATION_IDS
    for operation_id in ids:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation_id), operation_id
        assert not operation_id.endswith(("_get", "_post", "_put", "_delete")), operation_id
        assert "_api_" not in operation_id, operation_id


async def test_docs_pages_load_only_their_own_files(api: str) -> None:
    """Without a browser: /docs names only files this API serves; no CDN-bound /redoc."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        html = (await http.get("/docs")).text
        assert "http://" not in html and "https://" not in html, html
        referenced = re.findall(r'(?:src|href)="([^"]+)"', html)
        referenced += re.findall(r"url: '([^']+)'", html)
        assert len(referenced) == 4, html  # style sheet, favicon, script, document
        for url in referenced:
            assert url.startswith("/") and not url.startswith("//"), url
            assert (await http.get(url)).status_code == 200, url
        assert (await http.get("/docs/assets/favicon.png")).headers["content-type"] == "image/png"
        # ReDoc's page fetches its logo from Redocly's CDN, so it is off.
        assert (await http.get("/redoc")).status_code == 404


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.mark.timeout(180)
async def test_swagger_ui_works_offline_and_sends_the_key(
    api: str, settings: Settings, tmp_path: Path
) -> None:
    _chromium_or_skip()
    from playwright.async_api import Request, Route, async_playwright, expect

    document = json.loads((ROOT / "examples" / "hello-offline.json").read_text())
    save_definition(settings, document)
    origin = urlsplit(api)
    blocked: list[str] = []
    requested: list[str] = []
    page_errors: list[str] = []

    def loopback(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in ("data", "blob") or (
            parts.scheme == "http" and parts.hostname == "127.0.0.1"
        )

    async def only_loopback(route: Route, request: Request) -> None:
        if loopback(request.url):
            await route.continue_()
        else:
            blocked.append(request.url)
            await route.abort("blockedbyclient")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            chromium_sandbox=False,  # as root, Chromium's sandbox cannot start
            args=CHROMIUM_ARGS,
        )
        try:
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900}, service_workers="block"
            )
            context.set_default_timeout(30_000)
            await context.route("**/*", only_loopback)
            page = await context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.on("pageerror", lambda error: page_errors.append(str(error)))

            await page.goto(f"{api}/docs", wait_until="load")
            # Rendered: every operation listed, with its operation id.
            run = page.locator("#operations-runs-run_workflow")
            await expect(run).to_be_visible()
            await expect(run.locator(".opblock-summary-operation-id")).to_have_text("run_workflow")
            assert await page.locator(".opblock").count() == len(OPERATION_IDS)

            # Authorize: the bearer scheme's dialog takes the key.
            authorize = page.locator(".scheme-container button.authorize")
            await expect(authorize).to_be_visible()
            await authorize.click()
            dialog = page.locator(".modal-ux")
            await expect(dialog).to_contain_text("bearerAuth")
            await dialog.locator("input").fill(ADMIN_KEY)
            await dialog.locator("button.modal-btn.auth.authorize").click()
            await expect(dialog.get_by_role("button", name="Remove authorization")).to_be_visible()
            await expect(dialog).to_contain_text("Authorized")
            await dialog.get_by_role("button", name="Close").click()
            await expect(dialog).to_have_count(0)
            await expect(authorize).to_have_class(re.compile(r"\blocked\b"))

            # Try it out on GET /api/workflows: 200 in the page, sent with the key.
            listing = page.locator("#operations-workflows-list_workflows")
            await listing.locator(".opblock-summary").first.click()
            await listing.locator("button.try-out__btn").click()
            async with page.expect_response(
                lambda response: urlsplit(response.url).path == "/api/workflows"
            ) as answered:
                await listing.locator("button.execute").click()
            answer = await answered.value
            assert answer.status == 200
            sent = await answer.request.all_headers()
            assert sent["authorization"] == f"Bearer {ADMIN_KEY}"
            status = listing.locator(".live-responses-table .response .response-col_status")
            await expect(status).to_have_text("200")
            await expect(listing.locator(".live-responses-table")).to_contain_text("hello-offline")
            await expect(listing.locator(".curl-command")).to_contain_text(
                f"Authorization: Bearer {ADMIN_KEY}"
            )

            # A screenshot of the page as a reader sees it (operations, the locked Authorize).
            await page.evaluate("window.scrollTo(0, 0)")
            shot = tmp_path / "api-docs.png"
            await page.screenshot(path=str(shot))

            attempted = list(blocked)

            # The guard sees what a page tries: a fetch elsewhere is caught and fails.
            probe = "http://docs-test.invalid/probe"
            refused = await page.evaluate("url => fetch(url).then(() => false, () => true)", probe)
        finally:
            await browser.close()

    assert attempted == [], f"the docs tried to reach the network: {attempted}"
    assert refused and blocked == [probe], blocked
    requested.remove(probe)
    assert page_errors == [], page_errors
    assert requested and all(loopback(url) for url in requested), requested
    assert any(urlsplit(u).path == "/docs/assets/swagger-ui-bundle.js" for u in requested)
    assert any(urlsplit(u).path == "/openapi.json" for u in requested)
    assert all(urlsplit(u).port == origin.port for u in requested if u.startswith("http"))
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and 10_000 < len(png) < 300_000, len(png)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
