"""A hung worker (SIGSTOP): the step's heartbeat timeout fires and the failure says why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from activities.runtime.settings import Settings
from tests.conftest import eventually, outcome, read_log, start_definition
from tests.fakes import HttpSink, Reply


def worker_process(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "WORKFLOW_LOG_DIR": str(settings.workflow_log_dir),
        "PAYLOAD_STORE_DIR": str(settings.payload_store_dir),
        "HTTP_ALLOWED_HOSTS": "127.0.0.1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "worker"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


@pytest.mark.first
async def test_heartbeat_timeout_of_a_hung_activity(
    client: Client, settings: Settings, sink: HttpSink, tmp_path: Path
) -> None:
    sink.script("/hang", Reply(200, "late", delay=30))
    document = {
        "id": "hung",
        "steps": [
            {"id": "call", "type": "http", "url": f"{sink.url}/hang", "timeout_seconds": 12,
             "retry": {"max_attempts": 1}},
        ],
    }  # fmt: skip
    worker = worker_process(settings, tmp_path / "worker.log")
    try:
        handle = await start_definition(client, settings, document)
        await eventually(lambda: sink.deliveries("/hang"), timeout=30)
        worker.send_signal(signal.SIGSTOP)  # alive but silent: no heartbeats, no progress
        # The log and the final state need a live worker: a second one takes over.
        standby = worker_process(settings, tmp_path / "standby.log")
        try:
            state: dict[str, Any] = await outcome(handle, timeout=60)
        finally:
            standby.terminate()
            standby.wait(20)
    finally:
        worker.send_signal(signal.SIGCONT)
        worker.kill()
        worker.wait(10)
    assert state["status"] == "failed"
    assert state["error"]["type"] == "StepTimeout"
    assert "stopped responding" in state["error"]["message"]  # heartbeat, not start-to-close
    assert read_log(settings, handle.id)["steps"][0]["error_type"] == "StepTimeout"
