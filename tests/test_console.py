"""The web console at /console, used the way a person would, in a real headless browser.

Debian's Chromium (never a downloaded one) driven by Playwright opens the console served by
the real API app on loopback, with a worker on the test's own task queue and the session's
Temporal dev server behind it. Every request the page makes that is not to 127.0.0.1 is
blocked, and the test fails if one was even attempted (nothing comes from a CDN). The checks
are on what a user sees: the list, the graph, the editor's errors at their lines, the run form
and its field errors, the live timeline, approve and cancel buttons.

Set UPDATE_SCREENSHOTS=1 to write the screenshots to docs/screenshots/console-*.png.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from activities.runtime.settings import Settings
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import ADMIN_KEY, save_definition

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "docs" / "screenshots"
KEY_STORAGE = "wfe.console.apiKey"  # api/console/static/session.js
WAIT_MS = 20_000  # longest a step of the UI may take to show (a run's steps included)

# Every shape the graph draws: a condition's branch and default, a parallel with two
# branches, an on_error list routing by type inside a branch, a foreach body, a
# sub_workflow with an {"next"} error route, a jump to "end" and a fail step.
GRAPH_DOC: dict[str, Any] = {
    "id": "console-graph",
    "name": "Graph of every kind",
    "inputs": {"type": "object", "properties": {"items": {"type": "array", "default": [1, 2]}}},
    "triggers": [{"type": "webhook", "secret": "default"}],
    "steps": [
        {"id": "start", "type": "set", "values": {"n": 1}},
        {
            "id": "route",
            "type": "condition",
            "name": "Positive?",
            "branches": [{"when": "n > 0", "next": "fan"}],
            "default": "broken",
        },
        {
            "id": "fan",
            "type": "parallel",
            "output": "fanned",
            "branches": [
                {"id": "a", "steps": [{"id": "one", "type": "set", "values": {"x": 1}}]},
                {
                    "id": "b",
                    "steps": [
                        {
                            "id": "call",
                            "type": "http",
                            "url": "http://127.0.0.1:9/x",
                            "on_error": [
                                {"errors": ["HTTPStatusError"], "then": "fallback"},
                                {"then": "continue"},
                            ],
                        },
                        {"id": "fallback", "type": "set", "values": {"y": 2}},
                    ],
                },
            ],
        },
        {
            "id": "each",
            "type": "foreach",
            "items": "{items}",
            "output": "doubled",
            "steps": [{"id": "double", "type": "set", "compute": {"d": "item * 2"}}],
        },
        {
            "id": "child",
            "type": "sub_workflow",
            "workflow_id": "console-child",
            "output": "child_out",
            "on_error": {"next": "broken"},
        },
        {"id": "done", "type": "set", "values": {"ok": True}, "next": "end"},
        {"id": "broken", "type": "fail", "message": "not positive"},
    ],
}

# What the approval's payload must be: the console's approve form is built from it.
APPROVAL_PAYLOAD: dict[str, Any] = {
    "type": "object",
    "required": ["approved", "by"],
    "properties": {
        "approved": {"type": "boolean", "description": "Go ahead?"},
        "by": {"type": "string", "minLength": 2, "description": "Who approves"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
    },
    "additionalProperties": False,
}

# Inputs of every kind the form draws; two quick steps, an approval, one step after it.
APPROVAL_DOC: dict[str, Any] = {
    "id": "console-approval",
    "name": "Approval from the console",
    "description": "Greets, counts, waits for an approval, records who approved.",
    "inputs": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "description": "Who is greeted"},
            "count": {"type": "integer", "minimum": 0, "default": 2},
            "tone": {"type": "string", "enum": ["warm", "dry"], "default": "warm"},
            "loud": {"type": "boolean", "default": False},
            "extra": {"type": "object", "default": {}},
        },
    },
    "steps": [
        {
            "id": "greet",
            "type": "set",
            "name": "Compose a greeting",
            "values": {"greeting": "Hello {name}"},
        },
        {"id": "tally", "type": "set", "compute": {"total": "count + 1"}},
        {
            "id": "approval",
            "type": "wait_for_signal",
            "name": "Wait for an approval",
            "signal": "approval",
            "output": "approval",
            "timeout_seconds": 600,
            "payload_schema": APPROVAL_PAYLOAD,
        },
        {
            "id": "done",
            "type": "set",
            "values": {"outcome": "{greeting}, approved by {approval.by}"},
        },
    ],
}

# A wait with no payload_schema: the console proposes no payload of its own.
PLAIN_WAIT_DOC: dict[str, Any] = {
    "id": "console-plain-wait",
    "name": "A plain wait",
    "steps": [
        {
            "id": "hold",
            "type": "wait_for_signal",
            "signal": "go",
            "output": "go",
            "timeout_seconds": 600,
        }
    ],
}

# Three model calls (the fake OpenRouter answers) under a token budget that pauses the run.
BUDGET_DOC: dict[str, Any] = {
    "id": "console-budget",
    "name": "A budget that pauses",
    "budget": {"max_tokens": 30, "on_exceeded": "pause"},
    "steps": [
        {"id": step, "type": "ai", "model": "first/model", "prompt": f"say {step}"}
        for step in ("one", "two", "three")
    ],
}

# Nesting the timeline must keep apart: a parallel, a flat foreach, a foreach of 3 whose body
# holds a foreach of 2 and a parallel (all iterations at once, so their records interleave in
# time), and a sub_workflow, whose steps are its child's own execution.
NESTED_DOC: dict[str, Any] = {
    "id": "console-nested",
    "name": "Nested scopes",
    "steps": [
        {
            "id": "fan",
            "type": "parallel",
            "output": "fanned",
            "branches": [
                {"id": "a", "steps": [{"id": "one", "type": "set", "values": {"x": 1}}]},
                {"id": "b", "steps": [{"id": "two", "type": "set", "values": {"y": 2}}]},
            ],
        },
        {
            "id": "each",
            "type": "foreach",
            "items": [1, 2, 3],
            "output": "doubled",
            "steps": [{"id": "double", "type": "set", "compute": {"d": "item * 2"}}],
        },
        {
            "id": "outer",
            "type": "foreach",
            "items": [1, 2, 3],
            "as": "row",
            "output": "grid",
            "steps": [
                {
                    "id": "inner",
                    "type": "foreach",
                    "items": [10, 20],
                    "as": "col",
                    "output": "cells",
                    "steps": [{"id": "calc", "type": "set", "compute": {"v": "row * col"}}],
                },
                {
                    "id": "pair",
                    "type": "parallel",
                    "output": "paired",
                    "branches": [
                        {"id": "x", "steps": [{"id": "px", "type": "set", "values": {"p": 1}}]},
                        {"id": "y", "steps": [{"id": "py", "type": "set", "values": {"q": 2}}]},
                    ],
                },
            ],
        },
        {"id": "child", "type": "sub_workflow", "workflow_id": "console-leaf"},
    ],
}
LEAF_DOC: dict[str, Any] = {
    "id": "console-leaf",
    "name": "A child run",
    "steps": [{"id": "leaf", "type": "set", "values": {"leaf": True}}],
}


def nested_paths() -> list[str]:
    """NESTED_DOC's records in the order the grouped timeline shows them."""
    paths = ["fan", "fan.a.one", "fan.b.two", "each"]
    paths += [f"each[{i}].double" for i in range(3)]
    paths.append("outer")
    for i in range(3):
        paths.append(f"outer[{i}].inner")
        paths += [f"outer[{i}].inner[{j}].calc" for j in range(2)]
        paths += [f"outer[{i}].pair", f"outer[{i}].pair.x.px", f"outer[{i}].pair.y.py"]
    return [*paths, "child"]


# A graph too wide for its box and text too long for a node: a 150-character condition, a
# 64-character step id, a long URL, and a parallel of six branches.
LONG_WHEN = (
    "classification.priority == 'high' && classification.score > 2 && "
    "classification.team in ['billing', 'support', 'ops'] && size(classification.tags) > 0"
)
LONG_ID = "enrich-the-ticket-with-the-customer-record-and-the-contract-term"
WIDE_DOC: dict[str, Any] = {
    "id": "console-wide",
    "name": "Wide and wordy",
    "steps": [
        {
            "id": "classify",
            "type": "set",
            "values": {
                "classification": {"priority": "high", "score": 3, "team": "ops", "tags": ["vip"]}
            },
        },
        {
            "id": "route",
            "type": "condition",
            "branches": [{"when": LONG_WHEN, "next": LONG_ID}],
            "default": "fan",
        },
        {
            "id": LONG_ID,
            "type": "http",
            "name": "Look the customer up in the customer relationship system",
            "url": "http://127.0.0.1:9/customers/{classification.team}/records?fields=contract,terms,owner",
        },
        {
            "id": "fan",
            "type": "parallel",
            "branches": [
                {"id": f"b{i}", "steps": [{"id": f"s{i}", "type": "set", "values": {"v": i}}]}
                for i in range(6)
            ],
        },
    ],
}
# Every text of every node, inside its node's box (nothing drawn past the edge or cut).
TEXT_OUTSIDE_NODES = """svg => [...svg.querySelectorAll("g.gnode, g.gbox")].flatMap((g) => {
  const w = g.querySelector(":scope > rect").width.baseVal.value;
  return [...g.querySelectorAll(":scope > text")]
    .filter((t) => { const b = t.getBBox(); return b.x < 0 || b.x + b.width > w; })
    .map((t) => t.textContent);
})"""
FITS = (
    "el => [el.scrollWidth, el.clientWidth, el.querySelector('svg').getBoundingClientRect().width]"
)


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


def _loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or (
        parts.scheme == "http" and parts.hostname == "127.0.0.1"
    )


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line holding `needle`."""
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


@dataclass
class Console:
    """One browser tab on the console, and what it tried to reach."""

    page: Page
    url: str
    blocked: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    api_calls: list[tuple[str, str | None]] = field(default_factory=list)

    async def open(self, route: str = "") -> None:
        await self.page.goto(f"{self.url}/console{route}", wait_until="load")

    async def screenshot(self, name: str, tmp_path: Path) -> None:
        """A PNG of the viewport; kept in docs/ when UPDATE_SCREENSHOTS is set."""
        shot = tmp_path / f"console-{name}.png"
        await self.page.mouse.move(0, 0)  # no hover state in the picture
        await self.page.evaluate("document.getElementById('toasts').replaceChildren()")
        await self.page.screenshot(path=str(shot))
        png = shot.read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and 10_000 < len(png) < 600_000, len(png)
        if os.environ.get("UPDATE_SCREENSHOTS"):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOTS / shot.name)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for the module (a few hundred ms each start); a fresh context per test."""
    _chromium_or_skip()
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            chromium_sandbox=False,  # as root, Chromium's sandbox cannot start
            args=CHROMIUM_ARGS,
        )
        try:
            yield launched
        finally:
            await launched.close()
            expect.set_options(timeout=5_000)  # Playwright's default, for other modules


@contextlib.asynccontextmanager
async def _console(browser: Browser, api_url: str, signed_in: bool) -> AsyncIterator[Console]:
    from playwright.async_api import Request, Route

    context = await browser.new_context(
        viewport={"width": 1360, "height": 900}, service_workers="block"
    )
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    tab = Console(page=page, url=api_url)

    async def only_loopback(route: Route, request: Request) -> None:
        if _loopback(request.url):
            await route.continue_()
        else:
            tab.blocked.append(request.url)
            await route.abort("blockedbyclient")

    def seen(request: Request) -> None:
        if urlsplit(request.url).path.startswith("/api/"):
            tab.api_calls.append((request.url, request.headers.get("authorization")))

    await context.route("**/*", only_loopback)
    page.on("request", seen)
    page.on("pageerror", lambda error: tab.page_errors.append(str(error)))
    if signed_in:
        # As if the key had been entered once in this tab (the sign-in test does it by hand).
        await context.add_init_script(
            f"sessionStorage.setItem({json.dumps(KEY_STORAGE)}, {json.dumps(ADMIN_KEY)})"
        )
    try:
        yield tab
    finally:
        await context.close()
    assert tab.blocked == [], f"the console tried to reach the network: {tab.blocked}"
    assert tab.page_errors == [], tab.page_errors
    # The key only ever travels in the Authorization header, never in a URL.
    assert all(ADMIN_KEY not in url for url, _ in tab.api_calls)


@pytest.fixture
async def console(browser: Browser, api_url: str) -> AsyncIterator[Console]:
    async with _console(browser, api_url, signed_in=True) as tab:
        yield tab


@pytest.fixture
async def fresh_console(browser: Browser, api_url: str) -> AsyncIterator[Console]:
    async with _console(browser, api_url, signed_in=False) as tab:
        yield tab


async def start_run(http: httpx.AsyncClient, workflow_id: str, inputs: dict[str, Any]) -> str:
    response = await http.post(
        "/api/workflows/run", json={"workflow_id": workflow_id, "input_vars": inputs}
    )
    assert response.status_code == 202, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


@pytest.mark.timeout(60)
async def test_sign_in_lists_definitions_and_keeps_the_key_out_of_urls(
    fresh_console: Console, settings: Settings, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    save_definition(settings, GRAPH_DOC)
    save_definition(settings, APPROVAL_DOC)
    save_definition(settings, json.loads((ROOT / "examples" / "hello-offline.json").read_text()))
    page = fresh_console.page
    await fresh_console.open()

    # No key in this tab yet: the sign-in form, nothing else.
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.locator("#nav")).to_be_hidden()
    key_field = page.get_by_label("API key")
    await key_field.fill("not-a-key")
    await page.get_by_role("button", name="Sign in").click()
    refused = page.locator(".errors")
    await expect(refused).to_contain_text("This key does not open the API")
    await expect(refused.locator(".error-code")).to_have_text("unauthorized")
    assert await page.evaluate(f"sessionStorage.getItem({json.dumps(KEY_STORAGE)})") is None

    await key_field.fill(ADMIN_KEY)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Definitions")).to_be_visible()
    table = page.locator("#workflows-table")
    graph_row = table.locator('tr[data-workflow="console-graph"]')
    await expect(graph_row).to_contain_text("Graph of every kind")
    cells = graph_row.locator("td")
    await expect(cells.nth(2)).to_have_text("v1")
    await expect(cells.nth(3)).to_have_text("7")  # top-level steps
    await expect(cells.nth(4)).to_have_text("webhook")
    approval_row = table.locator('tr[data-workflow="console-approval"]')
    await expect(approval_row.locator("td").nth(3)).to_have_text("4")
    await expect(approval_row.locator("td").nth(4)).to_have_text("—")
    await expect(page.locator('#nav a[data-section="workflows"]')).to_have_attribute(
        "aria-current", "page"
    )

    # Kept for the tab's session: a reload needs no key; the URL never holds it.
    stored = await page.evaluate(f"sessionStorage.getItem({json.dumps(KEY_STORAGE)})")
    assert stored == ADMIN_KEY
    await page.reload()
    await expect(page.get_by_role("heading", name="Definitions")).to_be_visible()
    assert ADMIN_KEY not in page.url
    keyed = [auth for url, auth in fresh_console.api_calls if "not-a-key" not in str(auth)]
    assert keyed and all(auth == f"Bearer {ADMIN_KEY}" for auth in keyed)
    await fresh_console.screenshot("definitions", tmp_path)

    # A new definition from the template: checked as it loads, created under its own id.
    await page.get_by_role("link", name="New definition").click()
    await expect(page.get_by_role("heading", name="New definition")).to_be_visible()
    await expect(page.locator(".editor-status")).to_have_text("Valid")
    await page.get_by_role("button", name="Create definition").click()
    await expect(page.get_by_role("heading", name="My workflow")).to_be_visible()
    assert page.url.endswith("#/workflows/my-workflow")
    await expect(page.locator('svg.graph [data-step="approval"]')).to_have_count(1)

    # Forget key: back to the form, storage empty.
    await page.get_by_role("button", name="Forget key").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await page.evaluate(f"sessionStorage.getItem({json.dumps(KEY_STORAGE)})") is None


@pytest.mark.timeout(90)
async def test_graph_editor_errors_at_their_lines_save_and_versions(
    console: Console, settings: Settings, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    save_definition(settings, GRAPH_DOC)
    page = console.page
    await console.open("#/workflows/console-graph")
    await expect(page.get_by_role("heading", name="Graph of every kind")).to_be_visible()

    # The graph: every step a node, nested steps inside their scope's box.
    graph = page.locator("svg.graph")
    await expect(graph).to_be_visible()
    keys = [
        "start", "route", "fan", "fan.a.one", "fan.b.call", "fan.b.fallback",
        "each", "each.double", "child", "done", "broken",
    ]  # fmt: skip
    for key in keys:
        await expect(graph.locator(f'[data-step="{key}"]')).to_have_count(1)
    await expect(graph.locator("g.gbox")).to_have_count(2)  # parallel and foreach
    await expect(graph.locator('g.gbox[data-step="fan"] [data-step="fan.a.one"]')).to_have_count(1)
    await expect(graph.locator('g.gbox[data-step="each"] [data-step="each.double"]')).to_have_count(
        1
    )
    # Parallel branches side by side; a foreach body below its header.
    one = await graph.locator('[data-step="fan.a.one"] > rect.node-bg').bounding_box()
    call = await graph.locator('[data-step="fan.b.call"] > rect.node-bg').bounding_box()
    assert one and call and abs(one["y"] - call["y"]) < 2 and call["x"] > one["x"] + one["width"]
    # Arrows of each kind: the condition's branch and default, the error routes (by type
    # inside branch b, {"next"} from the sub_workflow), and a row saying where each goes.
    await expect(graph.locator("path.edge-branch")).to_have_count(1)
    await expect(graph.locator("path.edge-default")).to_have_count(1)
    await expect(graph.locator("path.edge-error")).to_have_count(2)
    await expect(graph.locator('[data-step="fan.b.call"] .row-error')).to_have_text(
        ["on HTTPStatusError", "on any error: continue"]
    )
    await expect(graph.locator('[data-step="route"] .row-branch')).to_have_text("if n > 0")
    await expect(graph.locator('[data-step="child"] .node-sub')).to_have_text(
        "runs workflow console-child"
    )
    await expect(graph.locator('a[href="#/workflows/console-child"]')).to_have_count(1)
    await console.screenshot("graph", tmp_path)

    # A click on a node opens the JSON at that step.
    await graph.locator('[data-step="each"] > rect.hit').click()
    await expect(page.get_by_role("tab", name="JSON")).to_have_attribute("aria-selected", "true")
    editor = page.get_by_label("Definition JSON")
    await expect(editor).to_be_focused()
    selected = await editor.evaluate(
        "el => el.value.slice(0, el.selectionStart).split('\\n').length"
    )
    text = await editor.input_value()
    assert selected == line_of(text, '"id": "each"') - 1  # the step's opening brace

    # A JSON syntax error, found in the page: at its line, with its column.
    broken = text.replace('"name": "Graph of every kind",', '"name": "Graph of every kind"')
    await editor.fill(broken)
    missing_comma = line_of(broken, '"name": "Graph of every kind"') + 1
    note = page.locator(f'.editor-note[data-line="{missing_comma}"]')
    await expect(note).to_contain_text("Expected ',' or '}' after a property")
    await expect(page.locator(".editor-status")).to_have_text("Not valid JSON")

    # The API's validation errors, each at the line its JSON path names.
    bad = json.loads(json.dumps(GRAPH_DOC))
    bad["steps"][0]["next"] = "nowhere"
    bad["steps"][3]["steps"][0]["compute"] = {"d": "item *"}
    bad_text = json.dumps(bad, indent=2)
    await editor.fill(bad_text)
    next_line = line_of(bad_text, '"next": "nowhere"')
    cel_line = line_of(bad_text, '"d": "item *"')
    await expect(page.locator(".editor-status")).to_have_text("2 problems")
    await expect(page.locator(f'.editor-note[data-line="{next_line}"]')).to_contain_text(
        "jumps to unknown step 'nowhere'"
    )
    await expect(page.locator(f'.editor-note[data-line="{cel_line}"]')).to_contain_text(
        "invalid CEL expression"
    )
    marked = page.locator(".gutter-line.has-error")
    await expect(marked).to_have_count(2)
    assert {int(n) for n in await marked.evaluate_all("els => els.map(e => e.dataset.line)")} == {
        next_line,
        cel_line,
    }
    problems = page.locator(".problem-list .problem")
    await expect(problems).to_have_count(2)
    await expect(problems.first).to_contain_text(f"Line {next_line}")
    await expect(problems.first.locator(".problem-path")).to_have_text("$.steps[0].next")
    # The graph follows the edited text (before saving): the jump target is flagged.
    await page.get_by_role("tab", name="Graph").click()
    await expect(page.locator("#panel-graph .notice")).to_contain_text("unsaved edits")
    await expect(graph.locator('[data-step="start"] .row-unknown')).to_contain_text("nowhere")
    await page.get_by_role("tab", name="JSON").click()
    await expect(editor).to_have_value(bad_text)  # the edits survived the tab switch
    # A problem's "Line N" puts the caret on that line.
    await problems.first.get_by_role("button", name=f"Line {next_line}").click()
    await expect(editor).to_be_focused()
    caret = await editor.evaluate("el => el.value.slice(0, el.selectionStart).split('\\n').length")
    assert caret == next_line
    await console.screenshot("editor", tmp_path)

    # Saving the broken text is refused with the same errors; nothing is saved.
    await page.get_by_role("button", name="Save new version").click()
    await expect(page.locator(".errors-title")).to_have_text("Not saved: 2 problems")
    assert (await http.get("/api/workflows/console-graph")).json()["version"] == 1
    # Problems sharing a line (the whole document on one line): every one is written on it.
    await editor.fill(json.dumps(bad))
    await expect(page.locator(".editor-status")).to_have_text("2 problems")
    one_line = page.locator('.editor-note[data-line="1"]')
    await expect(one_line).to_contain_text("jumps to unknown step 'nowhere'")
    await expect(one_line).to_contain_text("invalid CEL expression")

    # Fixed and saved: version 2, and version 1 is still there to read.
    fixed = json.loads(json.dumps(GRAPH_DOC))
    fixed["name"] = "Graph, second version"
    await editor.fill(json.dumps(fixed, indent=2))
    await expect(page.locator(".editor-status")).to_have_text("Valid")
    await page.get_by_role("button", name="Save new version").click()
    await expect(page.get_by_role("heading", name="Graph, second version")).to_be_visible()
    versions = page.locator("#version-select")
    await expect(versions).to_have_value("2")
    await expect(versions.locator("option")).to_have_text(["v2 (latest)", "v1"])
    saved = (await http.get("/api/workflows/console-graph")).json()
    assert saved["version"] == 2 and saved["definition"]["name"] == "Graph, second version"

    await versions.select_option("1")
    await expect(page.get_by_role("heading", name="Graph of every kind")).to_be_visible()
    assert "version=1" in page.url
    await expect(page.locator(".definition-editor .notice")).to_contain_text(
        "You are looking at version 1; the latest is 2"
    )
    await expect(page.get_by_label("Definition JSON")).to_have_value(
        re.compile(r'"name": "Graph of every kind"')
    )


@pytest.mark.timeout(60)
async def test_graph_text_is_wrapped_whole_and_the_graph_fits_its_box(
    console: Console, settings: Settings, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    assert len(LONG_WHEN) == 150
    save_definition(settings, WIDE_DOC)
    page = console.page
    await console.open("#/workflows/console-wide")
    graph = page.locator("svg.graph")
    await expect(graph.locator('[data-step="fan.b5.s5"]')).to_have_count(1)

    # The whole condition is on its node, over several lines; nothing is cut with "…".
    branch = graph.locator('[data-step="route"] text.row-branch')
    assert await branch.text_content() == f"if {LONG_WHEN}"
    assert await branch.locator("tspan").count() >= 3  # wrapped, not one line running off
    node_id = graph.locator(f'[data-step="{LONG_ID}"] text.node-id')
    assert await node_id.text_content() == LONG_ID
    assert "…" not in (await graph.text_content() or "")
    assert await graph.evaluate(TEXT_OUTSIDE_NODES) == []
    # The full text is in the node's tooltip too.
    title = graph.locator('[data-step="route"] > title')
    await expect(title).to_contain_text(LONG_WHEN)

    # Wider than its box, so it starts fitted to the box's width.
    box = page.locator(".graph-scroll")
    fit = page.get_by_role("button", name="Fit to width")
    await expect(fit).to_have_attribute("aria-pressed", "true")
    scroll_w, client_w, svg_w = await box.evaluate(FITS)
    assert scroll_w <= client_w and svg_w <= client_w, (scroll_w, client_w, svg_w)
    natural = int(await graph.get_attribute("data-width") or 0)
    assert natural > client_w
    await expect(page.locator(".zoom-level")).to_have_text(f"{round(svg_w / natural * 100)}%")
    await console.screenshot("graph-fit", tmp_path)

    # 100%: its own size, scrolled in the box; zoom in and out by steps; fit again.
    await page.get_by_role("button", name="Actual size (100%)").click()
    await expect(page.locator(".zoom-level")).to_have_text("100%")
    await expect(fit).to_have_attribute("aria-pressed", "false")
    scroll_w, client_w, svg_w = await box.evaluate(FITS)
    assert svg_w == natural and scroll_w > client_w
    await page.get_by_role("button", name="Zoom in").click()
    await expect(page.locator(".zoom-level")).to_have_text("125%")
    await page.get_by_role("button", name="Zoom out").click()
    await page.get_by_role("button", name="Zoom out").click()
    await expect(page.locator(".zoom-level")).to_have_text("80%")
    await fit.click()
    scroll_w, client_w, svg_w = await box.evaluate(FITS)
    assert scroll_w <= client_w and svg_w <= client_w
    # The whole graph, not only its width: its drawn box lies inside the scroll box.
    outer = await box.bounding_box()
    drawn = await graph.bounding_box()
    assert (
        outer
        and drawn
        and drawn["x"] >= outer["x"]
        and drawn["x"] + drawn["width"] <= (outer["x"] + outer["width"])
    )
    # Edits redraw the graph at the zoom the reader chose.
    await page.get_by_role("button", name="Actual size (100%)").click()
    await page.get_by_role("tab", name="JSON").click()
    editor = page.get_by_label("Definition JSON")
    await editor.fill((await editor.input_value()).replace('"id": "s5"', '"id": "s6"'))
    await page.get_by_role("tab", name="Graph").click()
    await expect(graph.locator('[data-step="fan.b5.s6"]')).to_have_count(1)
    await expect(page.locator(".zoom-level")).to_have_text("100%")


@pytest.mark.timeout(90)
async def test_run_from_the_form_then_approve_and_watch_the_timeline(
    console: Console, settings: Settings, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    save_definition(settings, APPROVAL_DOC)
    page = console.page
    await console.open("#/workflows/console-approval/run")
    form = page.locator("form.run-form")
    await expect(form.get_by_role("heading", name="Run console-approval")).to_be_visible()

    # The fields follow the inputs schema: types, required, defaults, enum as a select.
    name = form.get_by_label("name")
    await expect(name).to_have_attribute("aria-required", "true")
    await expect(form.locator('[data-field="name"] .required')).to_be_visible()
    await expect(form.locator('[data-field="name"] .hint')).to_have_text("Who is greeted")
    count = form.get_by_label("count")
    await expect(count).to_have_attribute("type", "number")
    await expect(count).to_have_value("2")
    tone = form.get_by_label("tone")
    await expect(tone.locator("option")).to_have_text(["warm", "dry"])
    await expect(form.get_by_label("loud")).not_to_be_checked()
    await expect(form.get_by_label("extra")).to_have_value("{}")

    # A required field left empty: said on the field, nothing sent.
    starts = len(console.api_calls)
    await form.get_by_role("button", name="Start run").click()
    name_error = form.locator('[data-field="name"] .field-error')
    await expect(name_error).to_have_text("required")
    await expect(name).to_have_attribute("aria-invalid", "true")
    assert not [url for url, _ in console.api_calls[starts:] if url.endswith("/run")]

    # What only the API knows (a minimum, a type): its 422 lists every problem, and each is
    # shown on the field its path names, not only the first.
    await name.fill("Ada")
    await count.fill("-1")
    extra = form.get_by_label("extra")
    await extra.fill("[1]")
    async with page.expect_response(lambda r: r.url.endswith("/api/workflows/run")) as refused:
        await form.get_by_role("button", name="Start run").click()
    answer = await (await refused.value).json()
    assert [e["path"] for e in answer["errors"]] == ["$.input_vars.count", "$.input_vars.extra"]
    for problem in answer["errors"]:
        field_name = problem["path"].rsplit(".", 1)[1]
        await expect(form.locator(f'[data-field="{field_name}"] .field-error')).to_have_text(
            problem["message"]
        )
        await expect(form.get_by_label(field_name)).to_have_attribute("aria-invalid", "true")
    await expect(form.locator("[data-field] .field-error:visible")).to_have_count(2)
    await expect(name_error).to_be_hidden()
    await expect(form.locator(".form-errors")).to_contain_text("see the fields above")
    await console.screenshot("run-form", tmp_path)

    await extra.fill("{}")
    await count.fill("3")
    await tone.select_option("dry")
    await form.get_by_role("button", name="Start run").click()
    await expect(page).to_have_url(re.compile(r"#/executions/[A-Za-z0-9_-]+-[0-9a-f-]{36}$"))
    execution_id = page.url.rsplit("/", 1)[1]

    # Live: the page follows the run to the approval without a reload.
    waiting = page.locator("form.waiting")
    await expect(waiting).to_contain_text("Waiting for signal “approval”")
    timeline = page.locator("ol.timeline")
    await expect(timeline.locator('li[data-path="greet"]')).to_have_attribute(
        "data-status", "success"
    )
    await expect(timeline.locator('li[data-path="tally"]')).to_have_attribute(
        "data-status", "success"
    )
    await expect(timeline.locator('li[data-path="approval"]')).to_have_attribute(
        "data-status", "running"
    )
    await expect(page.locator(".title-badge .badge")).to_have_text("running")
    await expect(page.locator("#temporal-link")).to_have_attribute(
        "href", re.compile(re.escape(execution_id))
    )
    await expect(page.locator('svg.graph [data-step="approval"]')).to_have_class(
        re.compile(r"\bst-running\b")
    )
    await console.screenshot("execution", tmp_path)

    # Approve from the page, with a form made from the step's payload_schema.
    await expect(waiting.locator("[data-field]")).to_have_count(3)
    approved = waiting.get_by_label("approved")
    await expect(approved).to_have_attribute("type", "checkbox")
    await expect(approved).not_to_be_checked()
    by = waiting.get_by_label("by")
    await expect(by).to_have_attribute("aria-required", "true")
    await expect(by).to_have_value("")
    await expect(waiting.locator('[data-field="by"] .hint')).to_have_text("Who approves")
    priority = waiting.get_by_label("priority")
    await expect(priority).to_have_value("3")
    # A payload the schema refuses: every problem on its field, nothing delivered, still waiting.
    await approved.check()
    await by.fill("x")
    await priority.fill("9")
    send = waiting.get_by_role("button", name="Send approval")
    async with page.expect_response(lambda r: "/signals/approval" in r.url) as refused:
        await send.click()
    answer = await (await refused.value).json()
    assert (await refused.value).status == 422
    assert [e["path"] for e in answer["errors"]] == ["$.by", "$.priority"]
    for problem in answer["errors"]:
        field_name = problem["path"][2:]
        await expect(waiting.locator(f'[data-field="{field_name}"] .field-error')).to_have_text(
            problem["message"]
        )
    await expect(waiting.locator("[data-field] .field-error:visible")).to_have_count(2)
    await expect(waiting).to_contain_text("approval was not delivered: see the fields above")
    await page.wait_for_timeout(1500)  # a refresh or two: the form keeps what was typed
    await expect(by).to_have_value("x")
    await expect(page.locator(".title-badge .badge")).to_have_text("running")
    status = (await http.get(f"/api/executions/{execution_id}")).json()
    assert status["status"] == "running" and status["waiting_for"] == "approval"
    assert status["waiting_payload_schema"] == APPROVAL_PAYLOAD
    await by.fill("the console")
    await priority.fill("2")
    await send.click()
    await expect(page.locator(".title-badge .badge")).to_have_text("completed")
    await expect(waiting).to_be_hidden()
    for step in ("greet", "tally", "approval", "done"):
        await expect(timeline.locator(f'li[data-path="{step}"]')).to_have_attribute(
            "data-status", "success"
        )
    await expect(timeline.locator("li")).to_have_count(4)
    outputs = page.locator('section[aria-labelledby="outputs-title"] pre')
    await expect(outputs).to_contain_text('"outcome": "Hello Ada, approved by the console"')
    await expect(outputs).to_contain_text('"total": 4')
    await expect(page.locator(".log pre")).to_contain_text('"step_id": "done"', timeout=WAIT_MS)
    # The run got the inputs the form typed: an integer, the chosen enum, the defaults.
    answer = (await http.get(f"/api/executions/{execution_id}")).json()
    assert answer["status"] == "completed"
    outputs_seen = answer["outputs"]
    assert outputs_seen["count"] == 3 and outputs_seen["tone"] == "dry"
    assert outputs_seen["loud"] is False and outputs_seen["extra"] == {}
    assert outputs_seen["approval"] == {"approved": True, "by": "the console", "priority": 2}
    assert answer["started_by"] == "test-admin"


@pytest.mark.timeout(60)
async def test_a_signal_without_payload_schema_starts_from_an_empty_object(
    console: Console, settings: Settings, http: httpx.AsyncClient
) -> None:
    from playwright.async_api import expect

    save_definition(settings, PLAIN_WAIT_DOC)
    execution_id = await start_run(http, "console-plain-wait", {})
    page = console.page
    await console.open(f"#/executions/{execution_id}")
    waiting = page.locator("form.waiting")
    await expect(waiting).to_contain_text("Waiting for signal “go”")
    status = (await http.get(f"/api/executions/{execution_id}")).json()
    assert status["waiting_for"] == "go" and status["waiting_payload_schema"] is None
    # No schema: a JSON box holding {} and nothing else; no fields, no suggested answer.
    await expect(waiting.locator("[data-field]")).to_have_count(0)
    payload = waiting.get_by_label("Payload (JSON)")
    await expect(payload).to_have_value("{}")
    await payload.fill('{"ok": true}')
    await waiting.get_by_role("button", name="Send go").click()
    await expect(page.locator(".title-badge .badge")).to_have_text("completed")
    outputs = page.locator('section[aria-labelledby="outputs-title"] pre')
    await expect(outputs).to_contain_text('"ok": true')


@pytest.mark.timeout(90)
async def test_a_paused_budget_is_answered_from_the_budget_schema(
    console: Console, settings: Settings, http: httpx.AsyncClient
) -> None:
    from playwright.async_api import expect

    save_definition(settings, BUDGET_DOC)
    execution_id = await start_run(http, "console-budget", {})
    page = console.page
    await console.open(f"#/executions/{execution_id}")
    waiting = page.locator("form.waiting")
    await expect(waiting).to_contain_text("Waiting for signal “budget”")
    # The budget signal's schema, as the status answer gives it: one field per limit.
    await expect(waiting.locator("[data-field]")).to_have_count(3)
    tokens = waiting.get_by_label("max_tokens")
    await expect(tokens).to_have_value("")
    await expect(waiting.get_by_label("max_cost_usd")).to_have_value("")
    await tokens.fill("0")
    await waiting.get_by_role("button", name="Send budget").click()
    await expect(waiting.locator('[data-field="max_tokens"] .field-error')).to_contain_text(
        "less than the minimum of 1"
    )
    assert (await http.get(f"/api/executions/{execution_id}")).json()["waiting_for"] == "budget"
    await tokens.fill("500")
    await waiting.get_by_role("button", name="Send budget").click()
    await expect(page.locator(".title-badge .badge")).to_have_text("completed")
    await expect(page.locator('ol.timeline li[data-path="three"]')).to_have_attribute(
        "data-status", "success"
    )


@pytest.mark.timeout(90)
async def test_cancel_from_the_page_rerun_and_the_filtered_list(
    console: Console, settings: Settings, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    save_definition(settings, APPROVAL_DOC)
    doomed = await start_run(http, "console-approval", {"name": "Bo"})
    waiting = await start_run(http, "console-approval", {"name": "Cy"})
    page = console.page
    await console.open(f"#/executions/{doomed}")
    await expect(page.locator("form.waiting")).to_be_visible()

    await page.get_by_role("button", name="Cancel execution").click()
    reason = page.get_by_label("Reason")
    await expect(reason).to_be_focused()
    await reason.fill("not needed any more")
    await page.get_by_role("button", name="Confirm cancel").click()
    await expect(page.locator(".title-badge .badge")).to_have_text("cancelled")
    await expect(page.locator("form.waiting")).to_be_hidden()
    await expect(page.get_by_role("button", name="Cancel execution")).to_be_hidden()
    answer = (await http.get(f"/api/executions/{doomed}")).json()
    assert answer["status"] == "cancelled"
    assert "not needed any more" in json.dumps(answer["error"])

    # Rerun from a chosen step: a new execution, or the API's refusal shown.
    from_step = page.get_by_label("Rerun from step")
    await expect(from_step.locator("option")).to_contain_text(["greet", "tally", "approval"])
    await from_step.select_option("tally")
    rerun_calls = len(console.api_calls)
    await page.get_by_role("button", name="Rerun", exact=True).click()
    refused = page.locator("form.rerun .errors")
    await page.wait_for_function(
        "id => document.querySelector('form.rerun .errors') || !location.hash.endsWith(id)",
        arg=doomed,
    )
    sent = [url for url, _ in console.api_calls[rerun_calls:] if url.endswith("/rerun")]
    assert sent == [f"{console.url}/api/executions/{doomed}/rerun"]
    leftovers = [waiting]
    if await refused.count():
        # Not (yet) served by this API: its answer is shown, not swallowed.
        await expect(refused.locator(".error-message")).not_to_be_empty()
    else:
        await expect(page).to_have_url(re.compile(r"#/executions/[A-Za-z0-9_-]+-[0-9a-f-]{36}$"))
        rerun_id = page.url.rsplit("/", 1)[1]
        leftovers.append(rerun_id)
        await expect(page.locator(".title-badge .badge")).to_be_visible()
        rerun = (await http.get(f"/api/executions/{rerun_id}")).json()
        assert rerun.get("rerun_of") == doomed, rerun
        # Approved through the API, so the list below holds every kind of ending.
        await expect(page.locator("form.waiting")).to_be_visible()
        approved = await http.post(
            f"/api/executions/{rerun_id}/signals/approval", json={"approved": True, "by": "api"}
        )
        assert approved.status_code == 202, approved.text
        await expect(page.locator(".title-badge .badge")).to_have_text("completed")

    # The list, filtered by workflow: both runs, with status, version and who started them.
    await console.open("#/executions?workflow_id=console-approval")
    table = page.locator("#executions-table")
    for _ in range(40):  # Temporal's visibility store lags a start by a moment
        if await table.locator(f'tr[data-execution="{waiting}"]').count():
            break
        await page.get_by_role("button", name="Refresh").click()
        await page.wait_for_timeout(250)
    await expect(page.locator("#filter-workflow")).to_have_value("console-approval")
    running_row = table.locator(f'tr[data-execution="{waiting}"]')
    await expect(running_row.locator("td").nth(3)).to_have_text("running")
    await expect(running_row.locator("td").nth(2)).to_have_text("v1")
    await expect(running_row.locator("td").nth(4)).to_have_text("test-admin")
    cancelled_row = table.locator(f'tr[data-execution="{doomed}"]')
    await expect(cancelled_row.locator("td").nth(3)).to_have_text("cancelled")
    await console.screenshot("executions", tmp_path)

    # Filtered by status too; the filters live in the URL.
    await page.locator("#filter-status").select_option("cancelled")
    await expect(page).to_have_url(re.compile(r"status=cancelled"))
    await expect(table.locator(f'tr[data-execution="{doomed}"]')).to_have_count(1)
    await expect(table.locator(f'tr[data-execution="{waiting}"]')).to_have_count(0)
    for execution_id in leftovers:  # runs left waiting would linger on the dev server
        response = await http.post(f"/api/executions/{execution_id}/cancel", json={})
        assert response.status_code in (202, 409), response.text


ROW_PATHS = "els => els.map(e => e.dataset.path)"


@pytest.mark.timeout(90)
async def test_nested_steps_sit_in_their_own_iteration_and_branch(
    console: Console, settings: Settings, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    save_definition(settings, NESTED_DOC)
    save_definition(settings, LEAF_DOC)
    response = await http.post(
        "/api/workflows/run",
        params={"wait": "true", "timeout": "30"},
        json={"workflow_id": "console-nested", "input_vars": {}},
    )
    assert response.status_code == 200 and response.json()["status"] == "completed", response.text
    execution_id = response.json()["execution_id"]
    page = console.page
    await console.open(f"#/executions/{execution_id}")
    await expect(page.locator(".title-badge .badge")).to_have_text("completed")
    timeline = page.locator("ol.timeline")
    rows = timeline.locator("li.step")
    await expect(rows).to_have_count(len(nested_paths()))
    # Read top to bottom, every record follows the step and the iteration or branch it ran in.
    assert await rows.evaluate_all(ROW_PATHS) == nested_paths()
    assert await rows.evaluate_all("els => els.map(e => e.dataset.status)") == ["success"] * len(
        nested_paths()
    )

    def group(key: str) -> Any:
        return timeline.locator(f'li.step-group[data-group="{key}"]')

    def direct_rows(key: str) -> Any:
        return group(key).locator(":scope > details > ol.step-scope > li.step")

    # A foreach's row holds one group per iteration, in item order; a parallel's, per branch.
    outer_groups = timeline.locator('li.step[data-path="outer"] > ol.step-groups > li.step-group')
    await expect(outer_groups).to_have_count(3)
    assert await outer_groups.evaluate_all("els => els.map(e => e.dataset.group)") == [
        "outer[0]",
        "outer[1]",
        "outer[2]",
    ]
    for i in range(3):
        assert await direct_rows(f"outer[{i}]").evaluate_all(ROW_PATHS) == [
            f"outer[{i}].inner",
            f"outer[{i}].pair",
        ]
        for j in range(2):
            assert await direct_rows(f"outer[{i}].inner[{j}]").evaluate_all(ROW_PATHS) == [
                f"outer[{i}].inner[{j}].calc"
            ]
        for branch, step in (("x", "px"), ("y", "py")):
            assert await direct_rows(f"outer[{i}].pair.{branch}").evaluate_all(ROW_PATHS) == [
                f"outer[{i}].pair.{branch}.{step}"
            ]
        await expect(group(f"outer[{i}]").locator("li.step")).to_have_count(6)
    await expect(group("outer[1]").locator("> details > .group-head")).to_contain_text(
        "iteration 1 · 6 steps"
    )
    await expect(group("fan.b").locator("> details > .group-head")).to_contain_text("branch b")
    assert await direct_rows("fan.b").evaluate_all(ROW_PATHS) == ["fan.b.two"]
    await expect(timeline.locator('li[data-path="outer[2].inner[1].calc"]')).to_have_attribute(
        "data-depth", "2"
    )
    # Nested rows sit further right than their parent.
    outer = await timeline.locator('li[data-path="outer"] > .step-icon').bounding_box()
    inner = await timeline.locator('li[data-path="outer[0].inner"] > .step-icon').bounding_box()
    assert outer and inner and inner["x"] > outer["x"] + 10
    await group("each[1]").locator("> details > summary").click()  # one folded, for the picture
    await page.evaluate("document.getElementById('timeline-title').scrollIntoView()")
    await console.screenshot("timeline", tmp_path)
    await group("each[1]").locator("> details > summary").click()
    # A group folds, and stays folded across the page's refreshes.
    await group("outer[0]").locator("> details > summary").click()
    await expect(direct_rows("outer[0]").first).to_be_hidden()
    await expect(direct_rows("outer[1]").first).to_be_visible()

    # The graph colours each node by the records that ran it (iterations folded together).
    for key in ("fan", "fan.a.one", "fan.b.two", "each", "each.double", "outer.inner.calc"):
        await expect(page.locator(f'svg.graph [data-step="{key}"]')).to_have_class(
            re.compile(r"\bst-success\b")
        )
    # Cancel is offered only while it runs; rerun only once it has ended.
    await expect(page.get_by_role("button", name="Cancel execution")).to_be_hidden()
    await expect(page.get_by_role("button", name="Rerun", exact=True)).to_be_visible()

    # A sub_workflow's steps are in its child's execution: linked from its row, not inlined.
    child_link = timeline.locator('li[data-path="child"] a.chip-child')
    await expect(child_link).to_have_text("child execution ↗")
    await child_link.click()
    await expect(page.locator('ol.timeline li[data-path="leaf"]')).to_have_attribute(
        "data-status", "success"
    )
    child_id = page.url.rsplit("/", 1)[1]
    assert child_id.startswith("console-leaf-")  # the child's own workflow id, as its record says
    child = (await http.get(f"/api/executions/{child_id}")).json()
    assert child["status"] == "completed" and child["workflow_id"] == "console-leaf", child


# The pure modules, run in the page itself: path -> line on awkward JSON, syntax errors with
# their position, grouping of record paths, record merging, and a graph drawn from a
# half-written document without an exception.
MODULE_CHECKS = r"""
async (text) => {
  const root = document.querySelector('meta[name="wfe-root"]').content + "/console/static/";
  const json = await import(root + "jsonpos.js");
  const timeline = await import(root + "timeline.js");
  const model = await import(root + "graph/model.js");
  const render = await import(root + "graph/render.js");
  const format = await import(root + "format.js");
  const parsed = json.parseWithPositions(text);
  const line = (path) => json.lineOfPath(text, parsed, path);
  const syntax = (bad) => {
    try { json.parseWithPositions(bad); return null; }
    catch (err) { return [err.message, err.line, err.column]; }
  };
  const merged = timeline.mergeRecords(
    [{seq: 1, step_id: "a", path: "a", run_id: "r1", start_time: "2025-01-01T00:00:00Z", status: "running"}],
    [{seq: 1, step_id: "a", path: "a", start_time: "2025-01-01T00:00:00Z", status: "success"},
     {seq: 2, step_id: "b", path: "b", start_time: "2025-01-01T00:00:01Z", status: "running"}],
  );
  // A group whose owner has no record yet, a loop running `each` twice (each visit keeps its
  // own iterations), and iterations that ran out of item order.
  const at = (seq, path) => ({seq, path, step_id: path, start_time: `2025-01-01T00:00:${String(seq).padStart(2, "0")}Z`});
  const stray = [at(1, "fan.a.one"), at(2, "fan"), at(3, "each"), at(4, "each[1].x"), at(5, "each[0].x"),
    at(6, "each"), at(7, "each[0].x")];
  const shape = (nodes) => nodes.map((n) => [n.path, n.record ? n.record.seq : null,
    n.groups.map((g) => [g.key, g.kind, shape(g.nodes)])]);
  const junk = [null, {type: "condition"}, {id: "x", next: "nope"},
    {id: "p", type: "parallel", branches: "bad"}, {id: "f", type: "foreach"}];
  const svg = render.renderGraph(junk, {});
  return {
    nested: line("$.a.b.c[1].d"),
    missing: line("$.plain.missing"),
    absent: line("$.steps[3].url"),
    proto: [line("$.__proto__"), Object.keys(parsed.value).includes("__proto__")],
    escaped: parsed.value.s,
    trailing: syntax('{"a": 1,\n}'),
    colon: syntax('{"a" 1}'),
    unterminated: syntax('{"a": "b\n"}'),
    scopes: ["fan.b.each[2].fetch", "outer[1].inner[2].calc", "fan.b.fetch", "solo"]
      .map((p) => timeline.groupOf(p)),
    tree: shape(timeline.groupRecords(stray)),
    merged: merged.map((r) => `${r.step_id}:${r.status}`),
    key: model.keyOfPath("fan.b.each[2].fetch"),
    junkNodes: svg.querySelectorAll("[data-step]").length,
    formats: [format.duration(1500), format.duration(125000), format.cost(0.000123), format.cost(1.5)],
    ids: ["support-triage-3f2a9c1e-0b1c-4d2e-8f90-1234567890ab", "w-idem-9b1c04de0123456789abcdef01234567",
      "3f2a9c1e-0b1c-4d2e-8f90-1234567890ab-review-7", "plain"].map(format.shortId),
  };
}
"""


@pytest.mark.timeout(60)
async def test_console_modules_on_awkward_input(console: Console) -> None:
    from playwright.async_api import expect

    await console.open()
    await expect(console.page.get_by_role("heading", name="Definitions")).to_be_visible()
    text = "\n".join(
        [
            "{",
            '  "a.b": {',
            '    "c": [',
            "      1,",
            '      {"d": 2}',
            "    ]",
            "  },",
            '  "plain": {"here": 1},',
            '  "__proto__": 3,',
            '  "s": "q\\"uote"',
            "}",
        ]
    )
    result = await console.page.evaluate(MODULE_CHECKS, text)
    assert result["nested"] == 5  # a key holding a "." is matched whole
    assert result["missing"] == 8  # a missing field: the object that lacks it
    assert result["absent"] == 1
    assert result["proto"] == [9, True]  # a plain key, as in JSON.parse
    assert result["escaped"] == 'q"uote'
    assert result["trailing"] == ["Trailing comma before '}' (line 2, column 1)", 2, 1]
    assert result["colon"][0].startswith("Expected ':' after the property name")
    assert result["colon"][1:] == [1, 6]
    assert result["unterminated"][0].startswith("A string must end on its own line")
    assert result["scopes"] == [
        {"key": "fan.b.each[2]", "owner": "fan.b.each", "kind": "iteration", "index": 2},
        {"key": "outer[1].inner[2]", "owner": "outer[1].inner", "kind": "iteration", "index": 2},
        {"key": "fan.b", "owner": "fan", "kind": "branch", "index": None},
        None,
    ]
    assert result["tree"] == [
        ["fan", 2, [["fan.a", "branch", [["fan.a.one", 1, []]]]]],
        [
            "each",
            3,
            [
                ["each[0]", "iteration", [["each[0].x", 5, []]]],
                ["each[1]", "iteration", [["each[1].x", 4, []]]],
            ],
        ],
        ["each", 6, [["each[0]", "iteration", [["each[0].x", 7, []]]]]],
    ]
    assert result["merged"] == ["a:success", "b:running"]
    assert result["key"] == "fan.b.each.fetch"
    assert result["junkNodes"] == 4  # null is skipped; the rest are drawn, however odd
    assert result["formats"] == ["1.50 s", "2 min 05 s", "$0.00012", "$1.50"]
    assert result["ids"] == [
        "support-triage-3f2a9c1e",
        "w-idem-9b1c04de",
        "3f2a9c1e-review-7",
        "plain",
    ]


async def test_the_console_serves_the_exported_definition_schema(api_url: str) -> None:
    # The graph reads the step kinds from this (graph/schema.js): it must be the export, with
    # the kinds' roles in it.
    async with httpx.AsyncClient(base_url=api_url) as http:
        served = await http.get("/console/static/workflow-definition.schema.json")
    assert served.status_code == 200
    exported = json.loads((ROOT / "docs" / "workflow-definition.schema.json").read_text())
    assert served.json() == exported
    assert served.json()["$defs"]["SubWorkflowStep"]["properties"]["workflow_id"]["x-role"] == (
        "workflow-id"
    )


# A kind the console has never heard of, as the kinds' registry would export it: its model in
# $defs (a `next`, an error route, a nested list of steps, its words), its type in every
# steps union. The graph draws it from the schema alone, with the console unchanged.
NEW_KIND_CHECKS = r"""
async () => {
  const root = document.querySelector('meta[name="wfe-root"]').content + "/console/static/";
  const { kindsFromSchema } = await import(root + "graph/kinds.js");
  const model = await import(root + "graph/model.js");
  const render = await import(root + "graph/render.js");
  const today = await (await fetch(root + "workflow-definition.schema.json")).json();
  const schema = structuredClone(today);
  schema.$defs.RelayStep = {
    type: "object",
    "x-label": ["calls {tool} on {server}"],
    required: ["id", "type", "server", "tool"],
    properties: {
      id: { type: "string" },
      type: { const: "relay", type: "string" },
      name: { type: "string" },
      server: { type: "string" },
      tool: { type: "string" },
      next: { anyOf: [{ type: "string", "x-role": "step-id" }, { type: "null" }], "x-flow": "next" },
      on_refusal: { type: "string", "x-role": "step-id", "x-flow": "error", "x-label": "if {server} refuses" },
      cleanup: { type: "array", items: { type: "object" }, "x-role": "steps", "x-label": "after {tool}" },
    },
  };
  const unions = [];
  (function find(node) {
    if (!node || typeof node !== "object") return;
    if (node.discriminator?.mapping?.set) unions.push(node);
    Object.values(node).forEach(find);
  })(schema);
  for (const union of unions) {
    union.discriminator.mapping.relay = "#/$defs/RelayStep";
    union.oneOf.push({ $ref: "#/$defs/RelayStep" });
  }
  const steps = [
    { id: "ask", type: "relay", server: "files", tool: "read", next: "after", on_refusal: "oops",
      cleanup: [{ id: "close", type: "relay", server: "files", tool: "close" },
        { id: "log", type: "set", values: { closed: true }, next: "end" }] },
    { id: "skipped", type: "set", values: { n: 1 } },
    { id: "after", type: "relay", server: "mail", tool: "send", next: "nowhere" },
    { id: "oops", type: "fail", message: "refused" },
  ];
  const kinds = kindsFromSchema(schema);
  const shape = (item) => ({ key: item.key, detail: item.detail, rows: item.rows, exits: item.exits,
    scopes: item.scopes.map((c) => [c.label, c.scope.items.map(shape)]) });
  const svg = render.renderGraph(steps, { kinds });
  const unknown = model.scopeOf(steps, { kinds: kindsFromSchema(today) }).items[0];
  const edges = {};
  for (const path of svg.querySelectorAll("path.edge")) {
    const kind = [...path.classList].find((c) => c !== "edge");
    edges[kind] = (edges[kind] || 0) + 1;
  }
  return {
    known: [kinds.types.includes("relay"), kindsFromSchema(today).types.includes("relay")],
    items: model.scopeOf(steps, { kinds }).items.map(shape),
    unknown: [unknown.detail, unknown.scopes.length, unknown.exits],
    nested: [...svg.querySelectorAll('g.gbox[data-step="ask"] g.gnode')].map((g) => g.dataset.step),
    label: svg.querySelector('g.gbox[data-step="ask"] .scope-label')?.textContent,
    edges,
  };
}
"""


@pytest.mark.timeout(60)
async def test_a_kind_the_console_never_heard_of_is_drawn_from_the_schema(
    console: Console,
) -> None:
    from playwright.async_api import expect

    await console.open()
    await expect(console.page.get_by_role("heading", name="Definitions")).to_be_visible()
    result = await console.page.evaluate(NEW_KIND_CHECKS)
    assert result["known"] == [True, False]
    ask, skipped, after, oops = result["items"]
    # Its words, its `next` (a jump), its error route as a row, its list of steps as a column
    # whose steps go on to the following one and to "end".
    assert ask["detail"] == "calls read on files"
    assert ask["rows"] == [{"kind": "error", "text": "if files refuses", "target": "oops"}]
    assert ask["exits"] == [
        {"from": "main", "kind": "jump", "target": "after"},
        {"from": 0, "kind": "error", "target": "oops"},
    ]
    assert ask["scopes"] == [
        [
            "after read",
            [
                {
                    "key": "ask.close",
                    "detail": "calls close on files",
                    "rows": [],
                    "exits": [{"from": "main", "kind": "next", "target": "log"}],
                    "scopes": [],
                },
                {
                    "key": "ask.log",
                    "detail": "sets closed",
                    "rows": [],
                    "exits": [{"from": "main", "kind": "jump", "target": "end"}],
                    "scopes": [],
                },
            ],
        ]
    ]
    assert skipped["exits"] == [{"from": "main", "kind": "next", "target": "after"}]
    # A `next` to no step is flagged on its node, as for any kind.
    assert after["rows"] == [{"kind": "error", "text": 'next: no step "nowhere"', "unknown": True}]
    assert after["exits"] == [] and oops["exits"] == []
    # Drawn: a box holding its steps, with its column's title and every arrow.
    assert result["nested"] == ["ask.close", "ask.log"]
    assert result["label"] == "after read"
    assert result["edges"] == {"edge-next": 3, "edge-jump": 2, "edge-error": 1}
    # With today's schema, which has no such kind, the same step is a plain node going on.
    assert result["unknown"] == ["", 0, [{"from": "main", "kind": "next", "target": "skipped"}]]


async def test_the_tests_tab_runs_the_saved_cases(
    console: Console, settings: Settings, http: httpx.AsyncClient
) -> None:
    from playwright.async_api import expect

    save_definition(settings, {"id": "console-tested", "steps": [
        {"id": "call", "type": "http", "url": "http://127.0.0.1:9/x", "output": "got"},
        {"id": "nap", "type": "delay", "seconds": 86400},
    ]})  # fmt: skip
    file = {"workflow_id": "console-tested", "cases": [
        {"name": "answers 201", "mocks": {"call": {"result": {"status": 201}}},
         "expect": {"outputs": {"got": {"status": 201}}, "steps": ["call", "nap"]}},
        {"name": "expects too much", "mocks": {"call": {"result": {"status": 200}}},
         "expect": {"outputs": {"got": {"status": 204}}}},
    ]}  # fmt: skip
    page = console.page
    await console.open("#/workflows/console-tested/tests")
    editor = page.get_by_label("Test file (JSON)")
    await editor.fill(json.dumps(file))
    await page.get_by_role("button", name="Run cases").click()
    await expect(page.locator(".test-summary")).to_have_text("1 passed, 1 failed")
    failed = page.locator('.test-case[data-case="expects too much"]')
    await expect(failed).to_contain_text("output 'got.status': expected 204, got 200")
    # The file is kept for the workflow: a fresh visit shows it, and a refused one says where.
    await page.reload()
    await expect(page.get_by_label("Test file (JSON)")).to_have_value(json.dumps(file))
    file["cases"][0]["mocks"] = {"cal": {"result": {}}}
    await page.get_by_label("Test file (JSON)").fill(json.dumps(file))
    await page.get_by_role("button", name="Run cases").click()
    await expect(page.locator(".errors")).to_contain_text("$.cases[0].mocks.cal")
    # Its run opens like any other.
    await page.get_by_label("Test file (JSON)").fill(
        json.dumps({**file, "cases": file["cases"][1:]})
    )
    await page.get_by_role("button", name="Run cases").click()
    await page.locator(".test-case a").click()
    await expect(page.locator(".title-badge .badge")).to_have_text("completed")


async def test_an_agents_mcp_calls_show_in_the_timeline(
    console: Console, settings: Settings, http: httpx.AsyncClient, mcp_server: Any,
    fake_openrouter: Any,
) -> None:  # fmt: skip
    """An agent whose tools come from an MCP server (tests/mcp_fakes.py): each call it made is
    on its timeline row as server__tool, a failed one marked with its error."""
    from playwright.async_api import expect

    from tests.fakes import Reply, completion, tool_call_completion

    fake_openrouter.then(
        Reply(200, tool_call_completion(("docs__search", {"query": "q"}), ("docs__broken", {}))),
        Reply(200, completion("done")),
    )
    agent = {
        "id": "agent", "type": "agent", "model": "m/agent", "prompt": "go", "output": "answer",
        "retry": {"max_attempts": 1}, "tools": [{"name": "docs", "mcp": {"url": mcp_server.url}}],
    }  # fmt: skip
    save_definition(settings, {"id": "console-mcp", "steps": [agent]})
    execution_id = await start_run(http, "console-mcp", {})
    await console.open(f"#/executions/{execution_id}")
    calls = console.page.locator("ol.timeline .tool-calls li")
    await expect(calls).to_have_text(["✓ docs__search", "✕ docs__broken"])
    await expect(calls.nth(1)).to_have_attribute("title", re.compile("broken on purpose"))
