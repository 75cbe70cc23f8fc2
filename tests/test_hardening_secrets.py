"""Secrets in other encodings: percent-encoded (quote, quote_plus, either hex case) and
JSON-escaped forms are redacted from errors, results, the status API, the log, history and
the worker's own log lines; a cross-origin redirect never carries a secret along
(activities/secrets.py, activities/http.py, docs/secrets.md)."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
from temporalio.client import Client

from activities.runtime.settings import Settings
from activities.secrets import (
    REDACTED,
    RedactingFilter,
    SecretStore,
    install_log_redaction,
    scrub_urls,
)
from tests.conftest import ADMIN_KEY, outcome, read_log, serve_api, start_definition
from tests.crash_support import WorkerProcess, worker_env
from tests.fakes import HttpSink, Reply
from worker import engine_worker
from workflows.errors import FailureType

# A core no encoding changes (for "not even a fragment" checks), then characters that each
# encoding writes differently: space, '/', '+', '&', '=', '"', '\\', non-ASCII, beyond the BMP.
CORE = "c4n4ry7q"
SECRET = CORE + ' s3/c+r&e=t"\\é😀'
HEADER_SECRET = "hdr-" + CORE + '+/="'  # header values are ASCII


def encodings(secret: str) -> dict[str, str]:
    return {
        "raw": secret,
        "quote": quote(secret),
        "quote safe=''": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "lower-case hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret)),
        "json": json.dumps(secret)[1:-1],
        "json, not ascii": json.dumps(secret, ensure_ascii=False)[1:-1],
        "httpx path": str(httpx.URL("http://h/p/" + secret)).split("/p/", 1)[1],
        "httpx query": str(httpx.URL("http://h/p", params={"k": secret})).split("k=", 1)[1],
        "httpx raw query": str(httpx.URL("http://h/p?k=" + secret)).split("k=", 1)[1],
    }


def leaks(text: str, secret: str = SECRET) -> list[str]:
    found = [name for name, form in encodings(secret).items() if form in text]
    return found + (["core"] if CORE in text else [])


def history_text(history_json: str) -> str:
    """The history as JSON plus every payload decoded (payload data is base64 in JSON)."""
    decoded = [
        base64.b64decode(match).decode("utf-8", errors="replace")
        for match in re.findall(r'"data":\s*"([A-Za-z0-9+/=]+)"', history_json)
    ]
    return "\n".join([history_json, *decoded])


# -- SecretStore.redact -----------------------------------------------------------------------


@pytest.mark.parametrize("form", list(encodings(SECRET)))
def test_every_encoding_of_a_secret_is_redacted(form: str) -> None:
    store = SecretStore({"TOKEN": SECRET})
    text = encodings(SECRET)[form]
    assert store.redact(f"before {text} after") == f"before {REDACTED} after"
    assert store.redact({text: [f"x{text}y"]}) == {REDACTED: [f"x{REDACTED}y"]}


def test_redaction_leaves_other_text_alone() -> None:
    store = SecretStore({"A": "hunter2", "B": "hunter2-longer"})
    for text in ("100% fine \\n + more", "hunter", "hunter%33", "hunter 2", "plain text"):
        assert store.redact(text) == text
    assert store.redact("hunter%32") == REDACTED  # %32 is '2': an encoding of the secret
    # The longer secret is replaced whole, not as "[REDACTED]-longer".
    assert store.redact("x hunter2-longer y") == f"x {REDACTED} y"
    assert store.redact("x hunter%32-longer y") == f"x {REDACTED} y"
    assert SecretStore({}).redact("hunter2") == "hunter2"


def test_a_large_result_is_redacted_in_reasonable_time() -> None:
    import time

    store = SecretStore({"TOKEN": SECRET})
    text = ("lorem %20 ipsum \\n dolor " * 200_000) + quote(SECRET)
    started = time.monotonic()
    assert store.redact(text).endswith(REDACTED)
    assert time.monotonic() - started < 3.0


# -- the process's own log --------------------------------------------------------------------


def test_urls_in_log_lines_lose_query_and_credentials() -> None:
    line = 'HTTP Request: POST http://user:pw@127.0.0.1:8080/a/b?key=s3cr3t&x=1 "HTTP/1.1 200 OK"'
    assert scrub_urls(line) == 'HTTP Request: POST http://127.0.0.1:8080/a/b "HTTP/1.1 200 OK"'
    assert scrub_urls("see https://example.test/x#frag") == "see https://example.test/x#frag"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A private logger tree with one handler, as worker.py's basicConfig gives the root."""
    root = logging.getLogger(f"hardening-{id(object())}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    httpx_level = logging.getLogger("httpx").level
    yield root, stream
    root.removeHandler(handler)
    logging.getLogger("httpx").setLevel(httpx_level)
    logging.getLogger("httpcore").setLevel(logging.NOTSET)


def test_the_redacting_filter_scrubs_messages_arguments_and_tracebacks(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    root, stream = captured
    redacting = install_log_redaction(SecretStore({"TOKEN": SECRET}), root)
    assert isinstance(redacting, RedactingFilter)
    child = root.getChild("library")  # records of child loggers reach the root's handler
    child.info("request to %s", f"http://127.0.0.1/p/{quote(SECRET)}?k={quote_plus(SECRET)}")
    child.warning("body was %r", {"token": SECRET})
    try:
        raise ValueError(f"bad token {json.dumps(SECRET)}")
    except ValueError:
        child.exception("failed")
    child.info("stack", stack_info=True)
    text = stream.getvalue()
    assert leaks(text) == [], text
    assert "?k=" not in text and "http://127.0.0.1/p/" + REDACTED in text
    assert "ValueError: bad token" in text and REDACTED in text
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING


# -- live: status API, log file and history ---------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def leaky_definition(sink: HttpSink) -> dict[str, Any]:
    return {
        "id": "secret-encodings",
        "steps": [
            # The sink echoes the percent-encoded path and query back in its JSON answer.
            {"id": "echo", "type": "http", "method": "POST",
             "url": f"{sink.url}/echo/{{secrets.TOKEN}}?k={{secrets.TOKEN}}",
             "query": {"q": "{secrets.TOKEN}"}, "json": {"t": "{secrets.TOKEN}"},
             "output": "echo"},
            # A 400 whose body quotes the secret encoded: the error message carries a snippet.
            {"id": "refused", "type": "http", "url": f"{sink.url}/fail?k={{secrets.TOKEN}}",
             "retry": {"max_attempts": 1}, "on_error": "continue"},
            # A transport error: the message names the URL, whose path holds the secret.
            {"id": "down", "type": "http",
             "url": f"http://127.0.0.1:{closed_port()}/x/{{secrets.TOKEN}}",
             "retry": {"max_attempts": 1}},
        ],
    }  # fmt: skip


@pytest.fixture
def secret_settings(settings: Settings, tmp_path: Path) -> Settings:
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps({"TOKEN": SECRET, "HEADER": HEADER_SECRET}))
    return settings.model_copy(update={"secrets_file": secrets_file})


@pytest.fixture
async def secret_worker(client: Client, secret_settings: Settings) -> AsyncIterator[Any]:
    async with engine_worker(client, secret_settings) as worker, worker:
        yield worker


async def test_encoded_secrets_leave_no_trace_in_api_log_or_history(
    client: Client, secret_settings: Settings, secret_worker: Any, sink: HttpSink
) -> None:
    sink.script(
        "/fail",
        Reply(400, f"bad key {quote(SECRET)} / {quote_plus(SECRET)} / {json.dumps(SECRET)}"),
    )
    handle = await start_definition(client, secret_settings, leaky_definition(sink))
    state = await outcome(handle)
    # The secret really went out, encoded, where the definition put it...
    (delivery,) = sink.deliveries(f"/echo/{encodings(SECRET)['httpx path']}")
    assert delivery.json() == {"t": SECRET}
    assert state["outputs"]["echo"]["status"] == 200
    assert len(sink.deliveries("/fail")) == 1
    # ...and came back redacted everywhere.
    assert state["status"] == "failed"
    assert state["error"]["type"] == FailureType.HTTP_TRANSPORT
    assert REDACTED in state["error"]["message"]
    assert REDACTED in state["outputs"]["echo"]["json"]["path"]
    steps = read_log(secret_settings, handle.id)["steps"]
    assert [s["status"] for s in steps] == ["success", "failed", "failed"]
    assert REDACTED in steps[1]["error"]
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        serve_api(secret_settings, client) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as api,
    ):
        answers = {
            "status": (await api.get(f"/api/executions/{handle.id}")).text,
            "log api": (await api.get(f"/api/executions/{handle.id}/log")).text,
        }
    history = await handle.fetch_history()
    places = {
        **answers,
        "state": json.dumps(state),
        "log file": (secret_settings.workflow_log_dir / f"{handle.id}.json").read_text(),
        "history": history_text(history.to_json()),
    }
    hits = {where: found for where, text in places.items() if (found := leaks(text))}
    assert hits == {}


async def test_the_worker_process_log_has_no_secret_and_no_query(
    client: Client, settings: Settings, sink: HttpSink, tmp_path: Path
) -> None:
    output = tmp_path / "worker.out"
    process = WorkerProcess(worker_env(settings, WORKFLOW_SECRET_TOKEN=SECRET), output)
    try:
        process.start()
        await process.wait_ready()
        sink.script("/fail", Reply(400, f"bad key {quote(SECRET)}"))
        handle = await start_definition(client, settings, leaky_definition(sink))
        state = await outcome(handle)
    finally:
        process.close()
    assert state["status"] == "failed"
    assert len(sink.deliveries("/fail")) == 1
    text = process.text()
    assert "worker polling task queue" in text  # the log really was captured
    assert leaks(text) == [], text
    assert "HTTP Request:" not in text  # httpx's per-request INFO line, full URL and all
    assert "?k=" not in text


# -- live: cross-origin redirects -------------------------------------------------------------


@pytest.fixture
def other_origin() -> Iterator[HttpSink]:
    server = HttpSink().start()  # another port on 127.0.0.1: another origin
    yield server
    server.stop()


async def test_a_cross_origin_redirect_drops_headers_filled_from_secrets(
    client: Client,
    secret_settings: Settings,
    secret_worker: Any,
    sink: HttpSink,
    other_origin: HttpSink,
) -> None:
    sink.script("/start", Reply(307, "", headers={"Location": "/same-origin"}))
    sink.script("/same-origin", Reply(302, "", headers={"Location": f"{other_origin.url}/land"}))
    document = {
        "id": "redirects",
        "steps": [
            {"id": "go", "type": "http", "url": f"{sink.url}/start",
             "headers": {"X-Api-Key": "{secrets.HEADER}", "Authorization": "Bearer {secrets.HEADER}",
                         "X-Signed": "v1 {secrets.HEADER}", "X-Plain": "kept"},
             "output": "r"},
        ],
    }  # fmt: skip
    state = await outcome(await start_definition(client, secret_settings, document))
    assert state["status"] == "completed", state["error"]
    (same,) = sink.deliveries("/same-origin")
    assert same.headers["x-api-key"] == HEADER_SECRET  # same origin: still sent
    (landed,) = other_origin.deliveries("/land")
    for name in ("x-api-key", "authorization", "x-signed"):
        assert name not in landed.headers, name
    assert landed.headers["x-plain"] == "kept"
    assert CORE not in json.dumps(landed.headers)


async def test_a_cross_origin_redirect_never_resends_a_secret_body(
    client: Client,
    secret_settings: Settings,
    secret_worker: Any,
    sink: HttpSink,
    other_origin: HttpSink,
) -> None:
    target = f"{other_origin.url}/land"
    sink.script("/secret-body", Reply(307, "", headers={"Location": target}))
    sink.script("/plain-body", Reply(308, "", headers={"Location": target}))
    sink.script("/to-get", Reply(303, "", headers={"Location": target}))
    document = {
        "id": "redirect-bodies",
        "steps": [
            {"id": "secret", "type": "http", "method": "POST", "url": f"{sink.url}/secret-body",
             "json": {"token": "{secrets.TOKEN}"}, "retry": {"max_attempts": 3},
             "on_error": "continue"},
            {"id": "plain", "type": "http", "method": "POST", "url": f"{sink.url}/plain-body",
             "json": {"n": 1}, "output": "plain"},
            {"id": "get", "type": "http", "method": "POST", "url": f"{sink.url}/to-get",
             "body": "k={secrets.TOKEN}", "output": "get"},
        ],
    }  # fmt: skip
    handle = await start_definition(client, secret_settings, document)
    state = await outcome(handle)
    assert state["status"] == "completed", state["error"]
    steps = read_log(secret_settings, handle.id)["steps"]
    assert steps[0]["status"] == "failed"
    assert steps[0]["error_type"] == FailureType.HTTP_STATUS  # not retried
    assert "re-send a body that carries a secret" in steps[0]["error"]
    assert len(sink.deliveries("/secret-body")) == 1
    landed = other_origin.deliveries("/land")
    # The body without a secret followed its 308; the 303 became a GET with no body.
    assert [(r.method, r.body) for r in landed] == [("POST", b'{"n":1}'), ("GET", b"")]
    assert all(CORE not in r.body.decode() for r in landed)
