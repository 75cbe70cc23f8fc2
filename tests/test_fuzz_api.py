"""Property-based fuzzing of the project's own OpenAPI schema (schemathesis): no 5xx.

The API runs as a real uvicorn process against the session's dev server; schemathesis runs
as its own process with a fixed seed and a bounded number of examples per operation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from api.cli.devstack import DevServer, free_port
from tests.conftest import ADMIN_KEY, TEST_KEYS

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# A run's event stream lasts until the run ends, and no worker runs them here: schemathesis
# reads a stream until it has been silent for the request timeout, so at 20 s each stream it
# opened took ~30 s (a ping every 15 s), about 90 of the test's 110 s. Its status and first
# events (where a fuzzed Last-Event-ID is read) come within 5 s; then it only polls on.
EVENTS_READ_FOR = """
[[operations]]
include-path = "/api/executions/{execution_id}/events"
request-timeout = 5
"""


@pytest.mark.first
@pytest.mark.timeout(400)
def test_fuzzing_the_openapi_schema_finds_no_server_errors(
    temporal_server: DevServer, tmp_path: Path
) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    for example in EXAMPLES.glob("*.json"):
        shutil.copyfile(example, definitions / example.name)
    port = free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": temporal_server.address,
        "TEMPORAL_TASK_QUEUE": f"fuzz-{uuid.uuid4()}",
        "WORKFLOW_DEFINITIONS_DIR": str(definitions),
        # The embedded database here; its first start imports the definitions above.
        "STORAGE_URL": f"file://{tmp_path}",
        "WORKFLOW_LOG_DIR": str(tmp_path / "logs"),
        "API_KEYS": json.dumps(TEST_KEYS),
        "API_RATE_LIMIT_PER_MINUTE": "1000000",
        "API_RATE_LIMIT_BURST": "100000",
        "WEBHOOK_SECRETS": json.dumps({"default": "fuzz-secret"}),
        # ?wait=true must answer before schemathesis' request timeout.
        "API_MAX_WAIT_SECONDS": "1",
    }
    log = (tmp_path / "api.log").open("wb")
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.server.main:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                # No worker polls here, so /readyz is 503 for `worker`; Temporal is enough.
                if httpx.get(f"{base}/readyz", timeout=2).json().get("temporal") == "ok":
                    break
            except (httpx.TransportError, ValueError):
                pass
            assert time.monotonic() < deadline, "the API did not become ready"
            time.sleep(0.2)
        schemathesis = Path(sys.executable).parent / "schemathesis"
        config = tmp_path / "schemathesis.toml"
        config.write_text(EVENTS_READ_FOR)
        result = subprocess.run(
            [str(schemathesis), "--config-file", str(config), "run", f"{base}/openapi.json",
             "--checks", "not_a_server_error",
             # /readyz is 503 on purpose here (no worker polls): tests/test_no_worker.py.
             "--exclude-path", "/readyz",
             "--max-examples", "6", "--seed", "20261125", "--workers", "1",
             # Generated examples and fuzzing, bounded by --max-examples per operation; the
             # coverage phase enumerates every boundary of every schema, which outgrew the
             # time a suite can give it as the API grew.
             "--phases", "examples,fuzzing",
             "--header", f"Authorization: Bearer {ADMIN_KEY}",
             "--request-timeout", "20", "--warnings", "off", "--no-color"],
            capture_output=True, text=True, timeout=360, env=env,
        )  # fmt: skip
    finally:
        api.terminate()
        api.wait(10)
        log.close()
    server_log = (tmp_path / "api.log").read_text(errors="replace")
    assert result.returncode == 0, (result.stdout[-6000:], server_log[-4000:])
    assert "Traceback" not in server_log, server_log[-4000:]
