"""LOG_FORMAT=json (docs/observability.md): the worker and the API, each run as its
production entry point in a subprocess, write one JSON object per line, name the execution and
the step a line is about, and redact secrets exactly as the text lines do."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.runtime.log_format import JsonFormatter, TemporalContextFilter, configure_logging
from activities.runtime.settings import Settings, load_settings
from activities.secrets import REDACTED, SecretStore, install_log_redaction
from api.cli.devstack import free_port
from tests.conftest import ADMIN_KEY, TEST_KEYS, outcome
from tests.crash_support import PROJECT_ROOT, WorkerProcess, worker_env
from tests.fakes import HttpSink, Reply
from workflows.errors import ConfigurationError

CANARY = "canary-json-5e1f0b77"
FIELDS = {"time", "level", "logger", "message"}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of the output, each parsed as JSON (a line that is not fails the test)."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            parsed = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(parsed, dict) and parsed.keys() >= FIELDS, line
        lines.append(parsed)
    return lines


def failing_definition(sink: HttpSink) -> dict[str, Any]:
    return {
        "id": "json-logs",
        "steps": [
            {"id": "hello", "type": "http", "url": f"{sink.url}/ok", "output": "ok"},
            # The 400's body quotes the secret: the SDK's failure line carries a snippet of it.
            {"id": "refused", "type": "http", "url": f"{sink.url}/fail?k={{secrets.TOKEN}}",
             "headers": {"Authorization": "Bearer {secrets.TOKEN}"},
             "retry": {"max_attempts": 1}},
        ],
    }  # fmt: skip


def api_process(settings: Settings, port: int, output: Path, **env: str) -> subprocess.Popen[bytes]:
    """`uvicorn --factory api.server.main:create_app`, as compose runs it (access log on)."""
    environment = worker_env(settings, API_KEYS=json.dumps(TEST_KEYS), **env)
    command = [sys.executable, "-m", "uvicorn", "--factory", "api.server.main:create_app",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    return subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=environment, stdout=output.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


async def wait_for_api(url: str, process: subprocess.Popen[bytes], within: float = 30) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as probe:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the API exited"
            try:
                if (await probe.get(f"{url}/healthz", timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"the API did not answer within {within}s")


async def test_worker_and_api_write_json_lines_with_ids_and_no_secret(
    client: Client, settings: Settings, sink: HttpSink, tmp_path: Path
) -> None:
    sink.script("/fail", Reply(400, {"error": f"bad key {CANARY}"}))
    env = {"LOG_FORMAT": "json", "WORKFLOW_SECRET_TOKEN": CANARY}
    worker = WorkerProcess(worker_env(settings, **env), tmp_path / "worker.out")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = api_process(settings, port, tmp_path / "api.out", **env)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    try:
        worker.start()
        await worker.wait_ready()
        await wait_for_api(url, api)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            document = failing_definition(sink)
            assert (await http.put("/api/workflows/json-logs", json=document)).status_code == 201
            started = await http.post("/api/workflows/run", json={"workflow_id": "json-logs"})
            assert started.status_code == 202, started.text
            execution_id = started.json()["execution_id"]
            state = await outcome(client.get_workflow_handle(execution_id))
            # A URL holding the secret: the access log line must not repeat it.
            seen = await http.get(f"/api/executions/{execution_id}", params={"note": CANARY})
            assert seen.status_code == 200
        assert state["status"] == "failed"
        (delivery,) = sink.deliveries("/fail")
        assert delivery.headers["authorization"] == f"Bearer {CANARY}"  # it really went out
        # SIGTERM: both stop as in production, logging their shutdown too.
        assert worker.process is not None
        worker.process.send_signal(signal.SIGTERM)
        api.send_signal(signal.SIGTERM)
        await worker.wait_exit(30)
        api.wait(30)
    finally:
        worker.close()
        if api.poll() is None:
            api.kill()
            api.wait(10)
    worker_text = worker.text()
    api_text = (tmp_path / "api.out").read_text(errors="replace")
    for name, text in (("worker", worker_text), ("API", api_text)):
        assert CANARY not in text, f"the secret is in the {name}'s output"
    worker_lines = json_lines(worker_text)
    api_lines = json_lines(api_text)

    # The worker: its start, and the failed step's line naming the execution and the step.
    assert any("worker polling task queue" in line["message"] for line in worker_lines)
    failed = [
        line
        for line in worker_lines
        if line.get("execution_id") == execution_id and line.get("step_id") == "refused"
    ]
    assert failed, worker_text
    assert failed[0]["level"] == "WARNING" and failed[0]["logger"] == "temporalio.activity"
    assert REDACTED in failed[0]["exception"]  # the provider's body, secret redacted
    assert not [line for line in worker_lines if line.get("step_id") == "hello"]  # no noise
    # One line per finished run, at INFO, naming its outcome, workflow and how long it took.
    (finished,) = [
        line
        for line in worker_lines
        if line.get("execution_id") == execution_id and f"{execution_id} failed" in line["message"]
    ]
    assert finished["level"] == "INFO" and finished["logger"] == "temporalio.workflow"
    assert "(workflow json-logs v1) in " in finished["message"], finished

    # The API: its start line, and the access lines of the execution's routes name it.
    assert any(f"started {execution_id}" in line["message"] for line in api_lines)
    access = [line for line in api_lines if line["logger"] == "uvicorn.access"]
    assert any(
        line.get("execution_id") == execution_id and REDACTED in line["message"] for line in access
    ), access
    print(f"worker: {len(worker_lines)} JSON lines, API: {len(api_lines)}; failed step line:",
          json.dumps(failed[0])[:300])  # fmt: skip


# -- the formatter and the context filter on a private logger tree ---------------------------


def private_tree() -> tuple[logging.Logger, io.StringIO]:
    """A logger tree of its own with one stream handler, as worker.py's basicConfig gives."""
    root = logging.Logger("private-root")
    stream = io.StringIO()
    root.addHandler(logging.StreamHandler(stream))
    return root, stream


def test_json_lines_are_redacted_like_text_lines() -> None:
    root, stream = private_tree()
    configure_logging("json", root)
    install_log_redaction(SecretStore({"TOKEN": CANARY}), root)
    log = logging.Logger("engine.test")
    log.parent = root
    try:
        raise RuntimeError(f"boom {CANARY}")
    except RuntimeError:
        log.exception("calling https://api.example/x?token=%s failed", CANARY)
    log.warning("step done", extra={"execution_id": "ex-1", "step_id": "s-1", "x": CANARY})
    first, second = json_lines(stream.getvalue())
    assert CANARY not in stream.getvalue()
    assert first["level"] == "ERROR" and first["logger"] == "engine.test"
    assert REDACTED in first["exception"] and "RuntimeError" in first["exception"]
    assert second == {
        "time": second["time"], "level": "WARNING", "logger": "engine.test",
        "message": "step done", "execution_id": "ex-1", "step_id": "s-1",
    }  # fmt: skip
    assert second["time"].endswith("+00:00")


def test_workflow_lines_name_their_execution() -> None:
    """workflow.logger attaches the run's info as `temporal_workflow` (the SDK's adapter)."""
    record = logging.LogRecord("temporalio.workflow", logging.WARNING, __file__, 1, "m", (), None)
    record.temporal_workflow = {"workflow_id": "ex-9", "run_id": "r", "workflow_type": "W"}
    TemporalContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["execution_id"] == "ex-9" and "step_id" not in line


def test_text_format_changes_nothing() -> None:
    root, _ = private_tree()
    formatter = root.handlers[0].formatter
    configure_logging("text", root)
    assert root.handlers[0].formatter is formatter
    assert not root.handlers[0].filters


def test_log_format_fails_fast_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="LOG_FORMAT"):
        load_settings(log_format="yaml")
    assert load_settings(log_format="JSON").log_format == "json"
