"""The README's first command: `wfe dev` (what `make dev` runs) starts Temporal, the worker
and the API, creates and prints an admin key, runs the offline tour, and Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.dev import DevServer, free_port, poll_limits

ROOT = Path(__file__).resolve().parent.parent


def _wait_for(check: object, within: float) -> object:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            value = check()  # type: ignore[operator]
            if value:
                return value
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready within {within}s")


@pytest.mark.timeout(180)
def test_wfe_dev_runs_the_tour_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    ports = {name: free_port() for name in ("temporal", "ui", "api", "metrics")}
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "API_KEYS",
            "API_KEYS_FILE",
            "AUTH_DISABLED",
            "HTTP_ALLOWED_HOSTS",
            "WORKER_METRICS_ADDRESS",
        )
    }
    env["PYTHONPATH"] = str(ROOT)
    wfe = Path(sys.executable).parent / "wfe"
    out = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [str(wfe), "dev", "--temporal-port", str(ports["temporal"]), "--ui-port",
         str(ports["ui"]), "--api-port", str(ports["api"]), "--metrics-port",
         str(ports["metrics"])],
        cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    api = f"http://127.0.0.1:{ports['api']}"
    try:
        _wait_for(lambda: httpx.get(f"{api}/readyz", timeout=2).status_code == 200, 90)
        key = json.loads((tmp_path / "storage" / "api-keys.json").read_text())[0]["key"]
        # The banner comes once the API answers; readiness may be seen a moment before it.
        printed = _wait_for(
            lambda: (lambda text: text if key in text else None)(
                (tmp_path / "dev.log").read_text(errors="replace")
            ),
            10,
        )
        assert f"http://127.0.0.1:{ports['ui']}" in str(printed)
        worker_metrics = f"http://127.0.0.1:{ports['metrics']}/metrics"
        assert worker_metrics in str(printed)
        assert (tmp_path / "definitions" / "hello-offline.json").exists()
        headers = {"Authorization": f"Bearer {key}"}
        started = httpx.post(
            f"{api}/api/workflows/run",
            json={"workflow_id": "hello-offline",
                  "input_vars": {"name": "Ada", "pause_seconds": 0}},
            headers=headers, timeout=10,
        )  # fmt: skip
        assert started.status_code == 202, started.text
        execution = f"{api}/api/executions/{started.json()['execution_id']}"
        _wait_for(
            lambda: httpx.get(execution, headers=headers).json()["current_step"] == "approval", 60
        )
        httpx.post(f"{execution}/signals/approval", json={"approved": True, "by": "me"},
                   headers=headers)  # fmt: skip
        done = _wait_for(
            lambda: (lambda b: b if b["status"] == "completed" else None)(
                httpx.get(execution, headers=headers).json()
            ),
            60,
        )
        assert done["outputs"]["outcome"] == "Hello Ada, the API answered 200. Approved by me."  # type: ignore[index]
        log = httpx.get(f"{execution}/log", headers=headers).json()
        assert log["status"] == "completed"
        # Metrics are on: the worker counted the tour's steps, the API its start.
        scraped = httpx.get(worker_metrics, timeout=5).text
        steps = [
            line
            for line in scraped.splitlines()
            if line.startswith("wfe_steps_total{") and 'workflow_id="hello-offline"' in line
        ]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in steps) == len(log["steps"])
        api_metrics = httpx.get(f"{api}/metrics", timeout=5).text
        assert 'wfe_executions_started_total{trigger="api",workflow_id="hello-offline"} 1.0' in (
            api_metrics
        )  # fmt: skip
    finally:
        dev.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            dev.wait(40)
        finally:
            if dev.poll() is None:
                dev.kill()
            out.close()
    assert "stopped." in (tmp_path / "dev.log").read_text(errors="replace")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{api}/healthz", timeout=2)
    leftover = subprocess.run(
        ["pgrep", "-f", f"--port {ports['temporal']}"], capture_output=True, text=True
    )
    assert leftover.stdout.strip() == "", "the Temporal dev server outlived Ctrl-C"


@pytest.mark.parametrize("taken", ["temporal", "ui", "api", "metrics"])
def test_wfe_dev_refuses_a_taken_port_before_starting_anything(tmp_path: Path, taken: str) -> None:
    ports = {name: free_port() for name in ("temporal", "ui", "api", "metrics")}
    flags = {"temporal": "--temporal-port", "ui": "--ui-port", "api": "--api-port",
             "metrics": "--metrics-port"}  # fmt: skip
    wfe = Path(sys.executable).parent / "wfe"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[taken]))
        holder.listen()
        done = subprocess.run(
            [str(wfe), "dev", *(arg for name in ports for arg in (flags[name], str(ports[name])))],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={**{k: v for k, v in os.environ.items() if k != "WORKER_METRICS_ADDRESS"},
                 "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    assert done.returncode == 1
    message = " ".join(done.stderr.split())
    assert f"port {ports[taken]}" in message and flags[taken] in message, done.stderr
    assert "already in use" in message
    assert "workflow engine running" not in done.stdout + done.stderr
    assert not (tmp_path / "storage").exists(), "nothing may be created before the check"
    leftover = subprocess.run(
        ["pgrep", "-f", f"--port {ports['temporal']}"], capture_output=True, text=True
    )
    assert leftover.stdout.strip() == ""


def test_wfe_dev_refuses_one_port_for_two_services(tmp_path: Path) -> None:
    port = str(free_port())
    wfe = Path(sys.executable).parent / "wfe"
    done = subprocess.run(
        [str(wfe), "dev", "--ui-port", port, "--api-port", port, "--temporal-port",
         str(free_port())],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 1
    assert f"both set to port {port}" in " ".join(done.stderr.split())


def test_every_dev_server_lifts_the_poll_limits_and_skips_fsync(tmp_path: Path) -> None:
    """wfe dev, the test fixture, bench/ and the chaos script all start Temporal through
    DevServer: the history poll limits are raised and SQLite runs WAL, synchronous=normal."""
    command = " ".join(DevServer(db_file=tmp_path / "t.db").command())
    for name, value in poll_limits().items():
        assert f"--dynamic-config-value {name}={value}" in command
    assert "--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal" in command
    in_memory = " ".join(DevServer().command())
    assert "--sqlite-pragma" not in in_memory and "history.transferProcessorMaxPollRPS" in in_memory
