"""What a browser may not do to this API, and what it shows, in Debian's headless Chromium
against the real API served by uvicorn (with a real worker and Temporal dev server):

- a page on another loopback origin can frame neither /docs (which takes the API key) nor
  /console, and every HTML answer says so in its headers;
- with AUTH_DISABLED=true, that page's "simple" cross-site POSTs (a text/plain or form body,
  no preflight) start nothing, while the API's own callers (keys, JSON, same origin) still do;
- the console shows a summarised large value as one readable line.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.runtime.settings import Settings
from tests.conftest import ADMIN_KEY, eventually, serve_api
from tests.fakes import HttpSink, Reply
from tests.test_console import Console, _console, browser  # noqa: F401 (fixture)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Frame

HELLO = {"id": "guarded", "steps": [{"id": "a", "type": "set", "values": {"x": 1}}]}


class HostilePage:
    """Another origin on loopback (its own port) serving one page of our choosing."""

    def __init__(self) -> None:
        self.html = ""
        page = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                body = page.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HostilePage:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hostile() -> Iterator[HostilePage]:
    with HostilePage() as page:
        yield page


@pytest.fixture
async def open_api(
    client: Client, settings: Settings, worker: Worker
) -> AsyncIterator[tuple[str, Settings]]:
    """The API with AUTH_DISABLED=true: every caller is an admin, so only the browser's own
    rules (and this API's checks of where a request comes from) stand in the way."""
    own = settings.model_copy(update={"auth_disabled": True})
    async with serve_api(own, client) as url:
        yield url, own


async def executions_of(api: str, workflow_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        answer = await http.get("/api/executions", params={"workflow_id": workflow_id})
        return list(answer.json()["executions"])


async def test_every_html_answer_forbids_framing(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        pages = 0
        for path in ("/docs", "/console", "/console/static/../../docs", "/nope"):
            answer = await http.get(path)
            assert answer.headers["x-frame-options"] == "DENY", path
            if answer.headers.get("content-type", "").startswith("text/html"):
                pages += 1
                assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert pages >= 2
        # JSON answers say it too (a browser may render one in a frame).
        assert (await http.get("/healthz")).headers["x-frame-options"] == "DENY"


@contextlib.asynccontextmanager
async def chromium_page(browser: Browser) -> AsyncIterator[Any]:  # noqa: F811
    context = await browser.new_context(service_workers="block")
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def framed(frame: Frame | None) -> bool:
    """Whether the frame shows the API's page (not Chromium's error page for a refusal)."""
    if frame is None or frame.url.startswith("chrome-error:"):
        return False
    return bool(await frame.locator("#swagger-ui, #app, body > *").count())


async def check_own_callers(api: str, foreign_origin: str) -> None:
    """The API's own callers are untouched: a keyed form, JSON without a key (AUTH_DISABLED),
    and a request from the API's own origin (as the console sends)."""
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        keyed = await http.post(
            "/api/workflows/run",
            data={"workflow_id": HELLO["id"]},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert keyed.status_code == 202, keyed.text
        plain_json = await http.post("/api/workflows/run", json={"workflow_id": HELLO["id"]})
        assert plain_json.status_code == 202, plain_json.text
        same_origin = await http.post(
            "/api/workflows/run",
            content=json.dumps({"workflow_id": HELLO["id"]}),
            headers={"Origin": api, "Content-Type": "text/plain", "Sec-Fetch-Site": "same-origin"},
        )
        assert same_origin.status_code == 202, same_origin.text
        # Another origin is refused even with a key and JSON; a keyless form with no Origin
        # (only a browser too old to send one does that) is refused too.
        foreign = await http.post(
            "/api/workflows/run",
            json={"workflow_id": HELLO["id"]},
            headers={"Origin": foreign_origin, "Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert foreign.status_code == 403
        assert foreign.json()["errors"][0]["code"] == "cross_site_refused"
        old_browser = await http.post("/api/workflows/run", data={"workflow_id": HELLO["id"]})
        assert old_browser.status_code == 403
        assert old_browser.json()["errors"][0]["code"] == "form_needs_key"
        # Reading from anywhere is not refused (nothing changes).
        read = await http.get("/api/workflows", headers={"Origin": foreign_origin})
        assert read.status_code == 200
    assert len(await executions_of(api, HELLO["id"])) == 3


@pytest.mark.timeout(120)
async def test_another_origin_can_neither_frame_nor_post_simple_requests(
    browser: Browser,  # noqa: F811
    hostile: HostilePage,
    open_api: tuple[str, Settings],
    settings: Settings,
) -> None:
    api, _ = open_api
    async with httpx.AsyncClient(base_url=api, timeout=30) as http:
        assert (await http.put(f"/api/workflows/{HELLO['id']}", json=HELLO)).status_code == 201
    # Frames of /docs and /console, a text/plain form whose body is JSON, a urlencoded form.
    # text/plain sends `name=value`: the name opens the JSON, the value closes it.
    text_name = json.dumps({"workflow_id": HELLO["id"], "input_vars": {"pad": ""}})[:-3]
    hostile.html = f"""<!doctype html><html><body>
      <iframe id="docs" src="{api}/docs"></iframe>
      <iframe id="console" src="{api}/console"></iframe>
      <iframe name="sink1"></iframe><iframe name="sink2"></iframe>
      <form id="plain" method="post" enctype="text/plain" target="sink1"
            action="{api}/api/workflows/run"><input name='{text_name}' value='"}}}}'></form>
      <form id="urlencoded" method="post" target="sink2" action="{api}/api/workflows/run">
        <input name="workflow_id" value="{HELLO["id"]}"></form>
    </body></html>"""
    answers: list[tuple[str, int]] = []
    async with chromium_page(browser) as page:
        page.on("response", lambda r: answers.append((r.url, r.status)))
        await page.goto(hostile.url, wait_until="load")
        await page.wait_for_timeout(1500)  # the frames had their chance to load
        for frame_id in ("docs", "console"):
            element = await page.query_selector(f"iframe#{frame_id}")
            assert element is not None
            assert not await framed(await element.content_frame()), frame_id
        for form in ("plain", "urlencoded"):
            await page.evaluate(f"document.getElementById('{form}').submit()")
        await eventually(lambda: len([a for a in answers if a[0].endswith("/run")]) == 2)
    runs = [status for url, status in answers if url.endswith("/run")]
    print("cross-site form posts answered:", runs)
    assert runs == [403, 403]
    assert await executions_of(api, HELLO["id"]) == []

    await check_own_callers(api, hostile.url)


@pytest.mark.timeout(120)
async def test_the_console_shows_a_summarised_value_as_one_line(
    browser: Browser,  # noqa: F811
    api_url: str,
    http: httpx.AsyncClient,
    sink: HttpSink,
) -> None:
    from playwright.async_api import expect

    sink.script("/big", Reply(200, {"rows": ["y" * 100] * 30_000, "count": 30_000}))
    document = {
        "id": "console-big",
        "steps": [{"id": "fetch", "type": "http", "url": f"{sink.url}/big", "output": "page"}],
    }
    assert (await http.put("/api/workflows/console-big", json=document)).status_code == 201
    run = await http.post(
        "/api/workflows/run", params={"wait": "true"}, json={"workflow_id": "console-big"}
    )
    assert run.status_code == 200 and run.json()["status"] == "completed", run.text
    execution_id = run.json()["execution_id"]
    async with _console(browser, api_url, signed_in=True) as tab:
        await tab.open(f"#/executions/{execution_id}")
        outputs = tab.page.locator('section[aria-labelledby="outputs-title"]')
        block = outputs.locator("pre")
        await expect(block).to_contain_text('"status": 200')
        # One line in angle quotes: the type, the size, the keys.
        line = re.compile('"json": "\u2039summarised: object, 2\\.9 MB, 2 keys: rows, count\u203a"')
        await expect(block).to_contain_text(line)
        await expect(outputs.locator("#summarised-note")).to_contain_text("page")
        step = tab.page.locator('li[data-path="fetch"] details.step-output')
        await step.locator("summary").click()
        await expect(step.locator("pre")).to_contain_text("\u2039summarised: object")
