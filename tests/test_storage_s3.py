"""Execution logs and large values in S3 (STORAGE_URL=s3://...), end to end: a real Temporal
dev server, the real worker and API, and moto's S3 server on loopback (tests/moto_s3.py).

- a run's log and its 3 MB result land in the bucket and come back through the API;
- an API and a worker process that share nothing but the bucket (the worker in its own empty
  directory) see each other's logs and large values, both ways;
- rotation and retention delete old logs and values past retention in the bucket.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from activities.log_rotation import RotationPolicy
from activities.logs import WorkflowLogger
from activities.runtime.payload_store import PayloadStore, retention_seconds
from activities.runtime.settings import Settings
from activities.runtime.storage import FileStorage, open_stores
from activities.runtime.temporal_client import connect_when_ready
from api.cli.database import upgrade_database
from tests.conftest import ADMIN_KEY, eventually, save_definition, serve_api
from tests.fakes import HttpSink, Reply
from tests.moto_s3 import bucket_keys, new_bucket, s3_endpoint_fixture  # noqa: F401 (a fixture)
from worker import engine_worker, rotate_logs_forever

ROOT = Path(__file__).resolve().parent.parent
BIG = 3 * 1024 * 1024


def big_definition(sink: HttpSink, wait: bool = False) -> dict[str, Any]:
    sink.script("/big", Reply(200, {"blob": "x" * BIG}))
    steps: list[dict[str, Any]] = [
        {"id": "fetch", "type": "http", "url": f"{sink.url}/big", "output": "page"},
        {"id": "use", "type": "set", "values": {"fetched": "{page.status}"}},
    ]
    if wait:
        steps.append({"id": "more", "type": "wait_for_signal", "signal": "more", "output": "more"})
    return {"id": f"big-{uuid.uuid4().hex[:6]}", "steps": steps}


def keep_for_replay(settings: Settings, payload_dir: Path) -> None:
    """tests/test_replay.py replays every history of the session with the session's file
    payload store: copy the bucket's large values there (content-addressed, the same keys)."""
    source, target = open_stores(settings).payloads, FileStorage(payload_dir)
    for info in source.list():
        blob = source.get(info.key)
        if blob is not None:
            target.put(info.key, blob.data)


@pytest.fixture
def s3_settings(
    settings: Settings,
    s3_endpoint: str,
    tmp_path: Path,
    payload_dir: Path,
) -> Iterator[Settings]:
    """The test's settings with logs and large values in a fresh bucket; the file directories
    point where nothing may appear."""
    s3 = settings.model_copy(
        update={
            "storage_url": f"s3://{new_bucket(s3_endpoint)}/engine",
            "s3_endpoint_url": s3_endpoint,
            "workflow_log_dir": tmp_path / "no-logs-here",
            "payload_store_dir": tmp_path / "no-payloads-here",
            # The control-plane database in the test's directory (not storage/ of the cwd).
            "database_url": SecretStr(f"sqlite:///{tmp_path / 'wfe.db'}"),
        }
    )
    upgrade_database(s3)
    yield s3
    keep_for_replay(s3, payload_dir)


@pytest.fixture
async def s3_client(s3_settings: Settings) -> Client:
    return await connect_when_ready(s3_settings)  # its codec keeps large values in S3


@pytest.fixture
async def s3_api(s3_settings: Settings, s3_client: Client) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_api(s3_settings, s3_client) as url,
        httpx.AsyncClient(
            base_url=url, timeout=60, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as http,
    ):
        yield http


def bucket_of(settings: Settings) -> str:
    return settings.storage_url.removeprefix("s3://").partition("/")[0]


def keys(settings: Settings) -> list[str]:
    assert settings.s3_endpoint_url is not None
    return bucket_keys(settings.s3_endpoint_url, bucket_of(settings))


async def finished(http: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        full = {"include": "variables"}
        answer = (await http.get(f"/api/executions/{execution_id}", params=full)).json()
        return answer if answer["status"] != "running" else None

    return dict(await eventually(done, timeout=45, interval=0.2))


async def test_a_runs_log_and_3mb_value_live_in_s3_and_come_back_through_the_api(
    s3_settings: Settings, s3_client: Client, s3_api: httpx.AsyncClient, sink: HttpSink
) -> None:
    document = big_definition(sink)
    save_definition(s3_settings, document)
    async with engine_worker(s3_client, s3_settings) as worker, worker:
        started = await s3_api.post(
            "/api/workflows/run", json={"workflow_id": document["id"]},
            params={"wait": "true", "timeout": "45"},
        )  # fmt: skip
        assert started.status_code == 200, started.text
        execution_id = started.json()["execution_id"]
        state = (
            await s3_api.get(f"/api/executions/{execution_id}", params={"include": "variables"})
        ).json()
    assert state["status"] == "completed", state["error"]
    assert len(state["outputs"]["page"]["json"]["blob"]) == BIG  # decoded from S3
    log = (await s3_api.get(f"/api/executions/{execution_id}/log")).json()
    assert log["status"] == "completed" and [s["step_id"] for s in log["steps"]] == [
        "fetch", "use",
    ]  # fmt: skip
    # The log keeps the step's record small; the run's variables hold the value whole.
    assert log["steps"][0]["output_vars"]["page"]["json"]["$summary"]["keys"] == ["blob"]
    # In the bucket: the log document and the value, content-addressed, nothing pending.
    stored = keys(s3_settings)
    assert f"engine/workflow_logs/{execution_id}.json" in stored
    values = [k for k in stored if k.startswith("engine/payloads/")]
    assert values and all(len(k.rsplit("/", 1)[1]) == 64 for k in values)
    sizes = [i.size for i in open_stores(s3_settings).payloads.list()]
    assert max(sizes) > BIG  # the 3 MB result, by reference
    assert not [k for k in stored if "/.pending/" in k]
    # History holds references only, and nothing was written to disk.
    history = await s3_client.get_workflow_handle(execution_id).fetch_history()
    assert max(len(e.SerializeToString()) for e in history.events) < 300 * 1024
    assert not s3_settings.workflow_log_dir.exists()
    assert not s3_settings.payload_store_dir.exists()


@pytest.fixture
def worker_process(s3_settings: Settings, tmp_path: Path) -> Iterator[Path]:
    """The real worker (python worker.py) in its own empty directory: it shares nothing with
    the test's API but Temporal and the bucket. Yields its directory."""
    home = tmp_path / "worker-home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in {n.upper() for n in Settings.model_fields}
    }  # the AWS dummies of the s3_endpoint fixture pass through
    env |= {
        "TEMPORAL_ADDRESS": s3_settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": s3_settings.temporal_task_queue,
        "STORAGE_URL": s3_settings.storage_url,
        "S3_ENDPOINT_URL": str(s3_settings.s3_endpoint_url),
        "HTTP_ALLOWED_HOSTS": "127.0.0.1",
    }
    output = (tmp_path / "worker.out").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")], cwd=home, env=env,
        stdout=output, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield home
    finally:
        process.terminate()
        process.wait(30)
        output.close()
        print((tmp_path / "worker.out").read_text()[-3000:])


async def test_an_api_and_a_worker_that_share_only_s3(
    s3_settings: Settings, s3_api: httpx.AsyncClient, worker_process: Path, sink: HttpSink
) -> None:
    document = big_definition(sink, wait=True)
    save_definition(s3_settings, document)
    started = await s3_api.post("/api/workflows/run", json={"workflow_id": document["id"]})
    assert started.status_code == 202, started.text
    execution_id = started.json()["execution_id"]

    async def waiting() -> bool:
        answer = (await s3_api.get(f"/api/executions/{execution_id}")).json()
        return bool(answer.get("waiting_for") == "more")

    await eventually(waiting, timeout=45, interval=0.2)  # the worker is up and fetched 3 MB
    # The other way: a large signal payload, stored by the API, read by the worker.
    note = "y" * (300 * 1024)
    signalled = await s3_api.post(
        f"/api/executions/{execution_id}/signals/more", json={"note": note}
    )
    assert signalled.status_code == 202, signalled.text
    state = await finished(s3_api, execution_id)
    assert state["status"] == "completed", state["error"]
    assert len(state["outputs"]["page"]["json"]["blob"]) == BIG  # the worker's value
    assert state["outputs"]["more"]["note"] == note  # the API's value, through the worker
    log = (await s3_api.get(f"/api/executions/{execution_id}/log")).json()
    assert log["status"] == "completed"  # written by the worker process
    assert [s["step_id"] for s in log["steps"]] == ["fetch", "use", "more"]
    assert log["steps"][2]["output_vars"]["more"]["note"]["$summary"]["length"] == len(note)
    stored = keys(s3_settings)
    assert f"engine/workflow_logs/{execution_id}.json" in stored
    assert len([k for k in stored if k.startswith("engine/payloads/")]) >= 2
    assert list(worker_process.iterdir()) == []  # the worker wrote nothing to its disk
    assert not s3_settings.workflow_log_dir.exists()
    assert not s3_settings.payload_store_dir.exists()


async def test_rotation_and_retention_delete_old_logs_and_values_in_s3(
    s3_settings: Settings,
    s3_client: Client,
    s3_api: httpx.AsyncClient,
    sink: HttpSink,
    payload_dir: Path,
) -> None:
    document = big_definition(sink)
    save_definition(s3_settings, document)
    async with engine_worker(s3_client, s3_settings) as worker, worker:
        started = await s3_api.post(
            "/api/workflows/run", json={"workflow_id": document["id"]},
            params={"wait": "true", "timeout": "45"},
        )  # fmt: skip
        assert started.json()["status"] == "completed", started.text
    execution_id = started.json()["execution_id"]
    keep_for_replay(s3_settings, payload_dir)  # before retention deletes the run's values
    stores = open_stores(s3_settings)
    logs = WorkflowLogger(stores.logs, RotationPolicy.from_settings(s3_settings))
    payloads = PayloadStore(stores.payloads)
    keep = retention_seconds(s3_settings)
    log_key = f"engine/workflow_logs/{execution_id}.json"

    # An hour on: the finished log is compressed, still the same document through the API.
    before = (await s3_api.get(f"/api/executions/{execution_id}/log")).json()
    report = await asyncio.to_thread(logs.rotate, time.time() + 3600 + 60)
    assert report.compressed >= 1
    assert f"{log_key}.gz" in keys(s3_settings) and log_key not in keys(s3_settings)
    assert (await s3_api.get(f"/api/executions/{execution_id}/log")).json() == before
    # Within retention the large value stays (a run could still need it).
    assert (await asyncio.to_thread(payloads.sweep, keep, time.time() + keep - 3600)).deleted == 0
    # Past LOG_MAX_AGE_DAYS the log goes; past the values' retention, the values go.
    await asyncio.to_thread(logs.rotate, time.time() + s3_settings.log_max_age_days * 86400 + 7200)
    assert (await asyncio.to_thread(payloads.sweep, keep, time.time() + keep + 60)).deleted >= 1
    assert [k for k in keys(s3_settings) if "/workflow_logs/" in k or "/payloads/" in k] == []
    gone = await s3_api.get(f"/api/executions/{execution_id}/log")
    assert gone.status_code == 404

    # The worker's own loop does the same every LOG_ROTATION_INTERVAL_SECONDS (here with a
    # retention of 0 s, so a fresh value is already past it).
    value = b"z" * 1024
    digest = hashlib.sha256(value).hexdigest()
    await asyncio.to_thread(payloads.save, digest, value)
    loop = asyncio.create_task(rotate_logs_forever(logs, 3600, payloads, keep=0.0))
    try:
        await eventually(lambda: not [k for k in keys(s3_settings) if digest in k], timeout=20)
    finally:
        loop.cancel()
